"""Where a process's CPU time goes, native code and kernel included: Linux `perf` (Debian's
linux-perf package), for the benchmarks that take --perf.

py-spy sees the Python frames of the thread holding the GIL; perf samples every thread of the
process and the processes it starts (git and its children), in user space and in the kernel, so
it tells the interpreter from libcurl, OpenSSL, libc and the system calls (each sample's
syscall, from its kernel stack). A sample is a slice of CPU time (the cpu-clock event: it
works in a VM without hardware counters).

    recorder = record(pid, path)   # perf record -g, following new threads and children
    ... the work ...
    stop(recorder)
    print_report(path)
"""
import signal
import subprocess
from collections import Counter

FREQUENCY_HZ = 499


def record(pid, path):
    """Start sampling process `pid` (its threads and children, as they come) into `path`."""
    return subprocess.Popen(["perf", "record", "-F", str(FREQUENCY_HZ), "-g",
                             "-o", str(path), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(recorder):
    recorder.send_signal(signal.SIGINT)  # perf writes its file on SIGINT
    recorder.wait(120)


def _samples(path):
    """[(command, [(address, symbol), …] innermost first)] of a perf.data file."""
    out = subprocess.run(["perf", "script", "-i", str(path), "-F", "comm,ip,sym"],
                         capture_output=True, text=True, errors="replace").stdout
    samples, current = [], None
    for line in out.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            current = (line.split()[0], [])
            samples.append(current)
        elif current is not None:
            address, _, symbol = line.strip().partition(" ")
            current[1].append((address, symbol.strip()))
    return samples


def _where(frames):
    """'kernel: <syscall>' for a sample in the kernel, else 'user'."""
    if not frames or not frames[0][0].startswith("ffffffff"):
        return "user"
    syscalls = [symbol for _, symbol in frames if symbol.startswith("__x64_sys_")]
    if syscalls:
        return f"kernel: {syscalls[0].removeprefix('__x64_sys_')}"
    if any("page_fault" in symbol for _, symbol in frames):
        return "kernel: page faults"
    return "kernel: interrupts and scheduling"


def _dsos(path):
    """{(command, shared object): samples} from perf report."""
    out = subprocess.run(["perf", "report", "-i", str(path), "--no-children", "--sort",
                          "comm,dso", "-g", "none", "--stdio", "-F", "sample,comm,dso"],
                         capture_output=True, text=True, errors="replace").stdout
    found = Counter()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit():
            found[(parts[1], parts[2])] += int(parts[0])
    return found


def print_report(path, title, top=12):
    """Shares of all samples: by command (the consumer, git, …), by command and shared object,
    and for the two busiest commands, user space against the kernel by system call."""
    samples = _samples(path)
    total = len(samples)
    if not total:
        print(f"perf ({title}): no samples (is perf installed and allowed?)")
        return
    by_command = Counter(command for command, _ in samples)
    print(f"perf ({title}, {total} samples of CPU time):")
    print("  by command: " + ", ".join(f"{c} {100 * n / total:.1f}%"
                                       for c, n in by_command.most_common(6)))
    dsos = _dsos(path)
    dso_total = sum(dsos.values()) or 1
    print("  by command and code:")
    for (command, dso), n in dsos.most_common(top):
        print(f"    {100 * n / dso_total:5.1f}%  {command:14} {dso}")
    for command, _ in by_command.most_common(2):
        places = Counter(_where(frames) for c, frames in samples if c == command)
        print(f"  {command}: user space, or the kernel by system call:")
        for place, n in places.most_common(8):
            print(f"    {100 * n / total:5.1f}%  {place}")
