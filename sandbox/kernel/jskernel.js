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

let buf = Buffer.alloc(0);
const chunk = Buffer.alloc(1 << 16);
async function loop() {
    for (;;) {
        let n;
        try {
            n = fs.readSync(cmdFd, chunk, 0, chunk.length, null);
        } catch (e) {
            if (e.code === 'EAGAIN' || e.code === 'EINTR')
                continue;
            throw e;
        }
        if (n === 0)
            process.exit(0);
        buf = Buffer.concat([buf, chunk.subarray(0, n)]);
        let i;
        while ((i = buf.indexOf(10)) >= 0) {
            const line = buf.subarray(0, i).toString();
            buf = buf.subarray(i + 1);
            let req;
            try {
                req = JSON.parse(line);
            } catch (e) {
                fail(e);
                continue;
            }
            await run(String(req.code));
        }
    }
}
loop();
