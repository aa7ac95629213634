"""Records its pid and a child's pid in $PID_FILE, then hangs. With IGNORE_TERM=1 it ignores
SIGTERM, so only SIGKILL ends it."""

import os
import signal
import subprocess
import sys
import time

if os.environ.get("IGNORE_TERM") == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
with open(os.environ["PID_FILE"], "w") as f:
    f.write(f"{os.getpid()} {child.pid}\n")
print("@progress 5 Waiting forever", flush=True)
while True:
    time.sleep(1)
