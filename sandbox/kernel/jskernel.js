// codebot sandbox javascript kernel: a persistent vm context driven by kernel.py.
// argv: command fd (one JSON line {"code"} per run), status fd (one JSON line per run:
// {"ok":true,"result":text|null} or {"ok":false,"name","value","stack"}). console output
// goes to fds 1 and 2 (pipes are synchronous on Linux, so it is out before the status line).
'use strict';
const fs = require('fs');
const vm = require('vm');
const util = require('util');

const cmdFd = Number(process.argv[2]);
const stFd = Number(process.argv[3]);
const sandbox = {console, require, process, Buffer, setTimeout, clearTimeout, setInterval,
                 clearInterval, setImmediate, clearImmediate, URL, TextEncoder, TextDecoder};
const ctx = vm.createContext(sandbox);
process.on('SIGINT', () => {}); // an interrupt between runs must not end the kernel

function reply(obj) {
    fs.writeSync(stFd, JSON.stringify(obj) + '\n');
}

function fail(e) {
    const isErr = e instanceof Error || (e && typeof e === 'object' && 'stack' in e);
    reply({ok: false, name: isErr && e.name ? String(e.name) : 'Error',
           value: isErr ? String(e.message) : util.inspect(e),
           stack: isErr && e.stack ? String(e.stack).split('\n').filter(
               (l) => !l.includes('jskernel.js') && !l.includes('node:')).join('\n') : ''});
}

async function run(code) {
    let value;
    try {
        value = vm.runInContext(code, ctx, {filename: '<cell>', breakOnSigint: true});
        if (value && typeof value.then === 'function')
            value = await value;
    } catch (e) {
        fail(e);
        return;
    }
    reply({ok: true, result: value === undefined ? null : util.inspect(value)});
}

// Requests are read asynchronously, so that timers and promises of earlier cells keep running
// between runs, as in a REPL; runs execute one after the other.
const readline = require('readline');
const input = readline.createInterface({input: fs.createReadStream(null, {fd: cmdFd})});
let chain = Promise.resolve();
input.on('line', (line) => {
    chain = chain.then(() => {
        let req;
        try {
            req = JSON.parse(line);
        } catch (e) {
            fail(e);
            return undefined;
        }
        return run(String(req.code));
    });
});
input.on('close', () => process.exit(0));
