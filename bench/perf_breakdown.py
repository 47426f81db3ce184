#!/usr/bin/env python3
"""Groups the samples of `perf report --no-children --sort dso,sym --stdio -g none` (of a
hookd process, BENCHMARKS.md says how it is recorded) into where a delivery's CPU goes.
Usage: perf_breakdown.py REPORT.txt [CPU_US_PER_DELIVERY]"""
import re, sys

GROUPS = [
    ("kernel: loopback TCP (send/receive)", lambda d, s: d == "[kernel.kallsyms]" and re.search(r"tcp|inet|ip_|skb|sock|__sys_(send|recv)|loopback|netif|net_rx|__dev_queue|napi|copy_user|_copy_|csum|__x64_sys_(sendto|recvfrom|write|read|writev)|rep_movs", s)),
    ("kernel: file writes and fsync (page cache, ext4, the virtual disk)", lambda d, s: d == "[kernel.kallsyms]" and re.search(r"ext4|jbd2|blk|fsync|iomap|filemap|xas_|folio|bio|nvme|virtio|iowrite|mpage|pwrite|pread|vfs_|page_cache|generic_perform_write|submit|block_|file_|fdget|mark_buffer|__es_|crc32c", s)),
    ("kernel: scheduling, wake-ups, epoll, futex", lambda d, s: d == "[kernel.kallsyms]" and re.search(r"sched|futex|epoll|switch|wake|hrtimer|ttwu|enqueue|dequeue|pick_next|update_curr|select_task|idle|syscall|entry_SYSCALL|do_syscall|irq|rcu|timer|clock", s)),
    ("kernel: other", lambda d, s: d == "[kernel.kallsyms]"),
    ("memory: malloc, free, memcpy", lambda d, s: d.startswith("libc") and re.search(r"malloc|free|realloc|memcpy|memmove|memset|memcmp|_int_|unlink_chunk|consolidate|tcache|arena", s)),
    ("SQLite (bundled C: statements, B-trees, page cache, WAL)", lambda d, s: s.startswith("sqlite3") or "rusqlite" in s or "libsqlite" in d or (d == "hookd" and "::" not in s and not s.startswith("<") and not s.startswith("_"))),
    ("PostgreSQL client (sqlx)", lambda d, s: "sqlx" in s),
    ("HTTP: hyper, axum, tower, reqwest", lambda d, s: re.search(r"hyper|axum|tower|reqwest|httparse|http::|h2::|matchit", s)),
    ("JSON (serde_json)", lambda d, s: "serde_json" in s or "serde::" in s),
    ("signing and hashing (HMAC, SHA-2, base64)", lambda d, s: re.search(r"sha2|hmac|sha256|base64|digest|ed25519|curve25519|ring::|chacha", s)),
    ("memory: malloc, free, memcpy", lambda d, s: re.search(r"malloc|free|realloc|memcpy|memmove|memset|_int_|alloc::|__rust_(alloc|dealloc|realloc)|cfree|arena|tcache", s)),
    ("tokio runtime and channels", lambda d, s: re.search(r"tokio|mio|parking_lot|crossbeam|futures|std::sync|std::thread|Notify", s)),
    ("hookd's own code", lambda d, s: re.search(r"hookd", s)),
    ("other user space (libc, std, unresolved)", lambda d, s: True),
]

def main():
    path = sys.argv[1]
    us = float(sys.argv[2]) if len(sys.argv) > 2 else None
    totals = {name: 0.0 for name, _ in GROUPS}
    tops = {name: [] for name, _ in GROUPS}
    for line in open(path, errors="replace"):
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3).strip()
        for name, test in GROUPS:
            if test(dso, sym):
                totals[name] += pct
                tops[name].append((pct, sym))
                break
    print("| where | share of hookd's CPU samples |" + (" µs per delivery |" if us else ""))
    print("|---|---|" + ("---|" if us else ""))
    for name in dict.fromkeys(n for n, _ in GROUPS):
        share = totals[name]
        if share < 0.05:
            continue
        row = f"| {name} | {share:.1f} % |"
        if us:
            row += f" {us * share / 100:.0f} |"
        print(row)
    print()
    for name in dict.fromkeys(n for n, _ in GROUPS):
        best = sorted(tops[name], reverse=True)[:6]
        if best:
            print(f"{name}: " + "; ".join(f"{p:.1f}% {s[:70]}" for p, s in best))

main()
