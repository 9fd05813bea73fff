"""20 clients SET a 50 MB value each, at once, then exit 0 when all got +OK.

Run by tests/tests/proxy/heavy.rs under `nice`, as the load of clients on other hosts would be: on a
two-core test machine, a load generator at the proxy's priority takes the CPU it measures.
Usage: large_sets.py PORT KEY_PREFIX
"""
import socket
import sys
import threading

port, prefix = int(sys.argv[1]), sys.argv[2]
value = b"v" * (50 << 20)
start = threading.Barrier(20)
failed = []


def writer(i):
    key = f"{prefix}:{i}".encode()
    head = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, len(value))
    s = socket.create_connection(("127.0.0.1", port))
    start.wait()
    s.sendall(head)
    s.sendall(value)
    s.sendall(b"\r\n")
    s.settimeout(60)
    reply = s.recv(16)
    if reply != b"+OK\r\n":
        failed.append((i, reply))


threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if failed:
    sys.exit(f"failed: {failed}")
