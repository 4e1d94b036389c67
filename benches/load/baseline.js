// Baseline for the load benchmark: a plain Node.js receiver that reads the body, checks the
// HMAC-SHA256 signature and answers 200 without storing anything (no durability).
//   node benches/load/baseline.js 9000 &
//   LOAD_TARGET_URL=http://127.0.0.1:9000/ cargo bench -p orchestrator-benches --bench load
const http = require("http");
const crypto = require("crypto");
const secret = "load-benchmark-secret";
http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const want = "sha256=" + crypto.createHmac("sha256", secret).update(body).digest("hex");
    const got = req.headers["x-hub-signature-256"] || "";
    const ok = got.length === want.length && crypto.timingSafeEqual(Buffer.from(got), Buffer.from(want));
    const out = JSON.stringify(ok ? { status: "accepted", delivery_id: req.headers["x-github-delivery"] } : { error: "invalid signature" });
    res.writeHead(ok ? 200 : 401, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
    res.end(out);
  });
}).listen(Number(process.argv[2] || 9000), "127.0.0.1");
