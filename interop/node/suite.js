// ali-oss through the gateway. Run by interop/alioss_test.go, which starts
// the gateway and an OSS emulator and then checks what the emulator stored.
//
// Environment:
//   GW_ENDPOINT  ali-oss endpoint: http(s)://files.test:PORT or http(s)://127.0.0.1:PORT
//   GW_CNAME     "1": cname: true (custom domain)
//   GW_RESOLVE   a host name to resolve to 127.0.0.1 (the custom domain), or ""
//   GW_BUCKET    bucket name (ali-oss needs one; the site names the real one)
//   GW_REGION    ali-oss region, e.g. oss-cn-hangzhou
//   GW_KEYBASE   prefix of every key this run writes, e.g. "node/"
//   GW_V4        "1": authorizationV4: true (the gateway strips either signature)
//   GW_ONLY      comma-separated operations to run; "" = all
//
// Output: one line "INTEROP_RESULT {json}" with one entry per operation:
// {op, ok, error?, unsupported?, data?}. The script itself exits 0 unless it
// could not run at all; the Go test decides what passes.
'use strict';

const crypto = require('crypto');
const http = require('http');
const https = require('https');
const OSS = require('ali-oss');

const env = name => process.env[name] || '';
const endpoint = env('GW_ENDPOINT');
const resolveName = env('GW_RESOLVE');
const keyBase = env('GW_KEYBASE');

// lookup sends the custom domain to 127.0.0.1, as its DNS record would
// send it to the gateway's fixed IP. Node asks with {all: true} when it
// tries address families in turn.
function lookup(host, opts, cb) {
  if (typeof opts === 'function') {
    cb = opts;
    opts = {};
  }
  if (host === resolveName) {
    if (opts && opts.all) return cb(null, [{ address: '127.0.0.1', family: 4 }]);
    return cb(null, '127.0.0.1', 4);
  }
  return require('dns').lookup(host, opts, cb);
}

// Agent options win over per-request ones in Node, so this lookup and
// rejectUnauthorized hold for every request ali-oss (urllib) makes.
const agent = new http.Agent({ keepAlive: true, lookup });
const httpsAgent = new https.Agent({ keepAlive: true, lookup, rejectUnauthorized: false });

const client = new OSS({
  accessKeyId: 'LTAIclientkey0001', // a client key the emulator does not know:
  accessKeySecret: 'client-secret-abcdef', // the gateway strips its signature
  bucket: env('GW_BUCKET'),
  region: env('GW_REGION'),
  endpoint,
  cname: env('GW_CNAME') === '1',
  authorizationV4: env('GW_V4') === '1',
  agent,
  httpsAgent,
  timeout: 20000
});

// fetchURL sends a plain request (a presigned URL) the way a browser or
// curl would, through the same resolution.
function fetchURL(method, url, body, headers) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const lib = u.protocol === 'https:' ? https : http;
    const req = lib.request(url, { method, headers: headers || {}, agent: u.protocol === 'https:' ? httpsAgent : agent }, res => {
      const chunks = [];
      res.on('data', c => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const sha256 = b => crypto.createHash('sha256').update(b).digest('hex');

// pseudoRandom is n reproducible bytes.
function pseudoRandom(n) {
  const out = Buffer.alloc(n);
  let x = 0x12345678;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function describe(err) {
  return {
    name: err.name,
    code: err.code,
    status: err.status,
    message: String(err.message).split('\n')[0].slice(0, 300)
  };
}

const results = [];

const only = env('GW_ONLY') ? env('GW_ONLY').split(',') : null;

async function op(name, fn) {
  if (only && !only.includes(name)) return;
  try {
    const r = (await fn()) || {};
    results.push(Object.assign({ op: name }, r, { ok: r.ok !== false && !r.unsupported }));
  } catch (err) {
    results.push({ op: name, ok: false, error: describe(err) });
  }
}

function fail(msg) {
  throw new Error(msg);
}

const HELLO = Buffer.from('hello from ali-oss');

async function main() {
  const k = name => keyBase + name;
  let putETag = '';

  await op('put', async () => {
    const r = await client.put(k('hello.txt'), HELLO);
    if (r.res.status !== 200) fail(`status ${r.res.status}`);
    putETag = r.res.headers.etag;
    return { data: { etag: putETag } };
  });

  await op('get', async () => {
    const r = await client.get(k('hello.txt'));
    if (r.res.status !== 200 || !r.content.equals(HELLO)) fail(`status ${r.res.status}, body ${JSON.stringify(String(r.content))}`);
  });

  await op('rangeGet', async () => {
    const r = await client.get(k('hello.txt'), { headers: { Range: 'bytes=6-9' } });
    if (r.res.status !== 206 || String(r.content) !== 'from') fail(`status ${r.res.status}, body ${JSON.stringify(String(r.content))}`);
    if (r.res.headers['content-range'] !== `bytes 6-9/${HELLO.length}`) fail(`Content-Range ${r.res.headers['content-range']}`);
  });

  await op('head', async () => {
    const r = await client.head(k('hello.txt'));
    if (r.status !== 200) fail(`status ${r.status}`);
    if (Number(r.res.headers['content-length']) !== HELLO.length) fail(`Content-Length ${r.res.headers['content-length']}`);
    if (putETag && r.res.headers.etag !== putETag) fail(`ETag ${r.res.headers.etag}, PUT answered ${putETag}`);
  });

  await op('noSuchKey', async () => {
    try {
      await client.get(k('missing.txt'));
    } catch (err) {
      if (err.status === 404 && err.code === 'NoSuchKey' && err.requestId) return { data: describe(err) };
      throw err;
    }
    fail('GET of a missing key succeeded');
  });

  await op('keysAndMetadata', async () => {
    const name = k('dir/a b+c%d 中文.txt');
    const body = Buffer.from(name);
    await client.put(name, body, { meta: { owner: 'interop' }, headers: { 'Cache-Control': 'no-cache' }, mime: 'text/x-test' });
    const r = await client.get(name);
    const h = r.res.headers;
    if (!r.content.equals(body)) fail(`body ${JSON.stringify(String(r.content))}`);
    if (h['x-oss-meta-owner'] !== 'interop' || h['content-type'] !== 'text/x-test' || h['cache-control'] !== 'no-cache') {
      fail(`headers ${JSON.stringify(h)}`);
    }
  });

  await op('multipartUpload', async () => {
    const body = pseudoRandom(700 * 1024 + 11); // 4 parts of 200 KiB
    const r = await client.multipartUpload(k('mp.bin'), body, { partSize: 200 * 1024, parallel: 3 });
    if (r.res.status !== 200) fail(`status ${r.res.status}`);
    return { data: { size: body.length, sha256: sha256(body) } };
  });

  await op('append', async () => {
    const r1 = await client.append(k('log.txt'), Buffer.from('one,'));
    if (String(r1.nextAppendPosition) !== '4') fail(`first nextAppendPosition ${r1.nextAppendPosition}`);
    const r2 = await client.append(k('log.txt'), Buffer.from('two'), { position: r1.nextAppendPosition });
    if (String(r2.nextAppendPosition) !== '7') fail(`second nextAppendPosition ${r2.nextAppendPosition}`);
  });

  await op('copyRefused', async () => {
    try {
      await client.copy(k('copy.txt'), k('hello.txt'));
    } catch (err) {
      if (err.status === 403 && err.code === 'AccessDenied') return { data: describe(err) };
      throw err;
    }
    fail('the copy succeeded');
  });

  // signatureUrl signs with V1 (OSSAccessKeyId, Expires, Signature) and
  // refuses IP endpoints; signatureUrlV4 signs with V4 and works on both.
  await op('signatureUrlGet', async () => {
    let url;
    try {
      url = client.signatureUrl(k('hello.txt'), { expires: 600 });
    } catch (err) {
      return { unsupported: describe(err).message };
    }
    const r = await fetchURL('GET', url);
    if (r.status !== 200 || !r.body.equals(HELLO)) fail(`GET ${url}: ${r.status} ${String(r.body).slice(0, 200)}`);
    return { data: { url } };
  });

  await op('signatureUrlPut', async () => {
    let url;
    try {
      url = client.signatureUrl(k('signed-v1.txt'), { method: 'PUT', expires: 600, 'Content-Type': 'text/plain' });
    } catch (err) {
      return { unsupported: describe(err).message };
    }
    const r = await fetchURL('PUT', url, Buffer.from('signed v1 put'), { 'Content-Type': 'text/plain' });
    if (r.status !== 200) fail(`PUT ${url}: ${r.status} ${String(r.body).slice(0, 200)}`);
    return { data: { url } };
  });

  await op('signatureUrlV4Get', async () => {
    const url = await client.signatureUrlV4('GET', 600, {}, k('hello.txt'));
    const r = await fetchURL('GET', url);
    if (r.status !== 200 || !r.body.equals(HELLO)) fail(`GET ${url}: ${r.status} ${String(r.body).slice(0, 200)}`);
    return { data: { url } };
  });

  await op('signatureUrlV4Put', async () => {
    const url = await client.signatureUrlV4('PUT', 600, { headers: {} }, k('signed-v4.txt'));
    const r = await fetchURL('PUT', url, Buffer.from('signed v4 put'));
    if (r.status !== 200) fail(`PUT ${url}: ${r.status} ${String(r.body).slice(0, 200)}`);
    return { data: { url } };
  });

  await op('delete', async () => {
    const r = await client.delete(k('hello.txt'));
    if (r.res.status !== 204) fail(`status ${r.res.status}`);
  });

  process.stdout.write(`INTEROP_RESULT ${JSON.stringify({ node: process.version, aliOss: require('ali-oss/package.json').version, results })}\n`);
  agent.destroy();
  httpsAgent.destroy();
}

main().catch(err => {
  process.stderr.write(`suite.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(2);
});
