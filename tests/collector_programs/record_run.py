"""Appends "JOB_ID PID" to $RECORD_FILE (one write, O_APPEND: safe from many processes)."""

import os
import time

line = f"{os.environ['COLLECTOR_HUB_JOB_ID']} {os.getpid()}\n".encode()
fd = os.open(os.environ["RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
os.write(fd, line)
os.close(fd)
time.sleep(float(os.environ.get("RECORD_SLEEP", "0")))
