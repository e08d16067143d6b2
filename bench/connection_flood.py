"""Opens N silent TCP connections to a running `lakeport serve` and reports, every 5 s, the
server's open file descriptors and how /health answers.

    python3 bench/connection_flood.py <port> <server pid> <connections> <rounds>
"""
import socket, time, sys, os, urllib.request, resource
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
addr = ("127.0.0.1", int(sys.argv[1])); pid = int(sys.argv[2]); n = int(sys.argv[3])
socks = []
t0 = time.time()
for i in range(n):
    try:
        s = socket.socket(); s.setblocking(True); s.settimeout(2); s.connect(addr); socks.append(s)
    except Exception as e:
        print("connect failed at", i, e); break
print(f"opened {len(socks)} connections in {time.time()-t0:.1f}s")
def fds(): return len(os.listdir(f"/proc/{pid}/fd"))
def health():
    t = time.time()
    try:
        r = urllib.request.urlopen(f"http://127.0.0.1:{addr[1]}/health", timeout=10); return r.status, round(time.time()-t, 3)
    except Exception as e:
        return str(e)[:60], round(time.time()-t, 3)
for k in range(int(sys.argv[4])):
    print(f"t={time.time()-t0:.1f}s server fds={fds()} health={health()}")
    time.sleep(5)
