'use strict';
// Run by `npm pack` / `npm publish` (prepack): copies the contract from the repository's protos/
// into this package, so an installed package loads the same .proto files without the repository.
const fs = require('node:fs');
const path = require('node:path');

const source = path.resolve(__dirname, '..', '..', '..', 'protos', 'notify');
const target = path.resolve(__dirname, '..', 'protos', 'notify');
fs.rmSync(target, { recursive: true, force: true });
fs.cpSync(source, target, { recursive: true });
console.log(`copied ${source} -> ${target}`);
