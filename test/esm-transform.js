/**
 * Jest transform for the few ESM-only packages unit tests load (dt-sql-parser and its antlr4-c3):
 * esbuild turns them into CommonJS, in milliseconds, so ts-jest does not have to.
 */
const { transformSync } = require('esbuild');

module.exports = {
  process(source, filename) {
    const out = transformSync(source, { loader: 'js', format: 'cjs', target: 'node20', sourcefile: filename, sourcemap: 'inline' });
    return { code: out.code };
  },
};
