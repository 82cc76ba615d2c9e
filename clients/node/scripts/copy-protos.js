'use strict';
// Run by `npm pack` / `npm publish` (prepack): copies the contract from the repository's protos/
// into this package, so an installed package loads the same .proto files without the repository.
const fs = require('node:fs');
const path = require('node:path');

// google/api: the vendored annotations.proto (and http.proto) the contract imports for its HTTP routes.
for (const dir of [['notify'], ['google', 'api']]) {
  const source = path.resolve(__dirname, '..', '..', '..', 'protos', ...dir);
  const target = path.resolve(__dirname, '..', 'protos', ...dir);
  fs.rmSync(target, { recursive: true, force: true });
  fs.cpSync(source, target, { recursive: true });
  console.log(`copied ${source} -> ${target}`);
}
