/**
 * Four projects: fast unit tests (pure, in-process), construct tests (synthesize CDK stacks and
 * assert on the templates; a few seconds per file), end-to-end tests (real servers and clients)
 * and load and fault tests (test/load: sustained load, outages, faulty upstreams). scripts/test.sh
 * runs `load` after the others, one file at a time, so that its load does not compete for CPUs.
 */
const tsJest = ['ts-jest', { tsconfig: 'tsconfig.jest.json' }];
module.exports = {
  projects: [
    {
      displayName: 'unit',
      testMatch: ['<rootDir>/test/unit/**/*.test.ts'],
      transform: { '^.+\\.ts$': tsJest, '/node_modules/(dt-sql-parser|antlr4-c3)/.+\\.m?js$': '<rootDir>/test/esm-transform.js' },
      // The Trino SQL parser (named-query tests) ships as ESM only.
      transformIgnorePatterns: ['/node_modules/(?!(dt-sql-parser|antlr4-c3)/)'],
      testEnvironment: 'node',
    },
    {
      displayName: 'construct',
      testMatch: ['<rootDir>/test/construct/**/*.test.ts'],
      transform: { '^.+\\.ts$': tsJest },
      testEnvironment: 'node',
    },
    {
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/e2e/**/*.test.ts'],
      transform: { '^.+\\.ts$': tsJest },
      testEnvironment: 'node',
    },
    {
      displayName: 'load',
      testMatch: ['<rootDir>/test/load/**/*.test.ts'],
      transform: { '^.+\\.ts$': tsJest },
      testEnvironment: 'node',
    },
  ],
};
