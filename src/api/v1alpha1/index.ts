export * from './common.ts';
export * from './mcpserver.ts';
export * from './agentpolicy.ts';
