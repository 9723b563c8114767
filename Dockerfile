# syntax=docker/dockerfile:1
# The operator / gateway image: one `mcpworks` program; the pod's args pick the subcommand
# (`controller`, `gateway`). Executor pods use sandbox-image/ instead (nsjail + runtimes).
#
#   docker build -t mcpworks/mcpworks:0.1.0 .
#
# Base pinned by version (pin by digest in your own build pipeline for reproducibility); the
# default follows NODE_VERSION and DEBIAN_RELEASE in sandbox-image/runtimes.env (a test checks).
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && chmod 0755 dist/cli/main.js

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# Only what runs: production dependencies, the compiled program, the CRDs it can print.
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY crds ./crds
RUN ln -s /app/dist/cli/main.js /usr/local/bin/mcpworks \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
# Numeric, non-root, and the same ids the chart's securityContext sets (runAsNonRoot can verify it).
USER 65532:65532
ENTRYPOINT ["mcpworks"]
CMD ["--help"]
