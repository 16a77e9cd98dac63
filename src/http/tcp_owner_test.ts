import assert from "node:assert/strict";
import { coalescingSource, findOwnerUid, parseHostPort, tcpPeerUid } from "./tcp_owner.ts";

const TCP =
  `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11 1 0
   1: 0100007F:A0B2 0100007F:0050 01 00000000:00000000 00:00000000 00000000  1000        0 12 1 0
   2: 0100007F:0050 0100007F:A0B2 01 00000000:00000000 00:00000000 00000000     0        0 13 1 0
`;
const TCP6 =
  `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:9C40 00000000000000000000000001000000:0050 01 00000000:00000000 00:00000000 00000000 65534        0 14 1 0
   1: 0000000000000000FFFF00000100007F:C350 0000000000000000FFFF00000100007F:0050 01 00000000:00000000 00:00000000 00000000  1001        0 15 1 0
`;
const source = {
  readTable: (f: string) => Promise.resolve(f === "/proc/net/tcp" ? TCP : TCP6),
};

Deno.test("parseHostPort reads v4 and v6 endpoints; junk is null", () => {
  const v4 = parseHostPort("127.0.0.1:41234")!;
  assert.equal(v4.v4, true);
  assert.equal(v4.port, 41234);
  assert.deepEqual([...v4.addr.subarray(10)], [255, 255, 127, 0, 0, 1]);
  const v6 = parseHostPort("[::1]:80")!;
  assert.equal(v6.v4, false);
  assert.equal(v6.addr[15], 1);
  for (
    const bad of ["", "x", "1.2.3.4", "1.2.3.4:99999", "[::1]80", "256.1.1.1:1", "[:::1]:1", "unix"]
  ) {
    assert.equal(parseHostPort(bad), null, bad);
  }
});

Deno.test("the client socket's line gives the uid (4-tuple match, both families)", async () => {
  // 127.0.0.1:41138 → 127.0.0.1:80 is uid 1000's socket; the server's own end (uid 0) is not it
  assert.equal(await tcpPeerUid("127.0.0.1:41138", "127.0.0.1:80", source), 1000);
  assert.equal(await tcpPeerUid("[::1]:40000", "[::1]:80", source), 65534);
  // a v4 client whose socket is AF_INET6 (v4-mapped) is found in tcp6
  assert.equal(await tcpPeerUid("127.0.0.1:50000", "127.0.0.1:80", source), 1001);
  // unknown socket, other server port, not loopback, junk: null
  assert.equal(await tcpPeerUid("127.0.0.1:1", "127.0.0.1:80", source), null);
  assert.equal(await tcpPeerUid("127.0.0.1:41138", "127.0.0.1:81", source), null);
  assert.equal(await tcpPeerUid("10.0.0.1:41138", "10.0.0.2:80", source), null);
  assert.equal(await tcpPeerUid("unix", "127.0.0.1:80", source), null);
  assert.equal(findOwnerUid("garbage", "0100007F:A0B2", "0100007F:0050"), null);
});

Deno.test("unreadable tables mean an unknown uid", async () => {
  const broken = { readTable: () => Promise.reject(new Error("EACCES")) };
  assert.equal(await tcpPeerUid("127.0.0.1:41138", "127.0.0.1:80", broken), null);
});

/** Our uid, as the owner of a file we create (Deno.uid() needs --allow-sys). */
function ownUid(): number {
  const f = Deno.makeTempFileSync();
  try {
    return Deno.statSync(f).uid!;
  } finally {
    Deno.removeSync(f);
  }
}

/** Deno reads /proc/net only with --allow-all (or --allow-read plus sys access) */
function canReadProc(): boolean {
  try {
    Deno.readTextFileSync("/proc/net/tcp");
    return true;
  } catch {
    return false;
  }
}

const NET = Deno.permissions.querySync({ name: "net", host: "127.0.0.1" }).state === "granted" &&
  canReadProc();

Deno.test({
  name: NET
    ? "the real kernel table names our own uid for our own loopback connection"
    : "the real kernel table names our own uid (SKIPPED: reading /proc/net/tcp needs -A)",
  ignore: !NET,
  fn: async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const c = await Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port });
    const s = await l.accept();
    try {
      const r = s.remoteAddr as Deno.NetAddr;
      const lo = s.localAddr as Deno.NetAddr;
      assert.equal(
        await tcpPeerUid(`${r.hostname}:${r.port}`, `${lo.hostname}:${lo.port}`),
        ownUid(),
      );
    } finally {
      c.close();
      s.close();
      l.close();
    }
  },
});

Deno.test("lookups share table reads: one read at a time, later askers get a fresh one", async () => {
  let reads = 0;
  let release: (() => void)[] = [];
  const slow = coalescingSource({
    readTable: async () => {
      reads++;
      const n = reads;
      await new Promise<void>((r) => release.push(r));
      return `read ${n}`;
    },
  });
  const first = slow.readTable("/proc/net/tcp");
  const waiting = Array.from({ length: 50 }, () => slow.readTable("/proc/net/tcp"));
  assert.equal(reads, 1, "one read at a time");
  release.shift()!();
  assert.equal(await first, "read 1");
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(reads, 2, "the 50 that asked during read 1 share read 2");
  release.shift()!();
  assert.deepEqual(new Set(await Promise.all(waiting)), new Set(["read 2"]));
  release = [];
});
