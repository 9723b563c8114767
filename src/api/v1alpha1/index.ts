export * from './common.ts';
export * from './mcpserver.ts';
export * from './agentpolicy.ts';
export * from './conditions.ts';
export * from './rules.ts';
export * from './validations.ts';
