"""Memory and CPU time of this process and its descendants, read from /proc.

Used by the PyTorch benchmarks (torch_train.py, torch_aug.py), whose
DataLoader workers are separate processes: their memory and CPU time are not
in the main process's getrusage(RUSAGE_SELF), and getrusage(RUSAGE_CHILDREN)
only reports the largest single child's ru_maxrss, after it has exited.

TreeSampler samples, every `interval` seconds in a daemon thread, the summed
RSS (VmRSS) and the summed PSS (proportional set size, which splits pages
shared after fork() among the processes that share them) of this process and
all its live descendants, and keeps the peaks. The RSS sum counts pages
shared between the main process and its forked workers once per process, so
it overstates the tree's footprint; the PSS sum does not.
"""

import os
import threading

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def descendants(root=None):
    """PIDs of root's live descendants (root: this process), by scanning /proc."""
    root = os.getpid() if root is None else root
    parent = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _read(f"/proc/{name}/stat")
        if not stat:
            continue
        # The command name may hold spaces: fields after the last ')' are fixed.
        fields = stat[stat.rfind(")") + 2:].split()
        parent[int(name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid:
                found.append(child)
                frontier.append(child)
    return found


def status_kib(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM), 0 if the process is gone."""
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pss_kib(pid):
    """Proportional set size of a process in kB, 0 if it is gone."""
    for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User plus system CPU seconds a live process has used (0 if gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return 0.0
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def tree_cpu_seconds():
    """CPU seconds of this process and its live descendants, per PID."""
    pids = [os.getpid()] + descendants()
    return {pid: cpu_seconds(pid) for pid in pids}


class TreeSampler:
    """Peak summed RSS and PSS of this process tree, sampled in a thread."""

    def __init__(self, interval=0.5):
        self.interval = interval
        self.peak_rss_kib = 0
        self.peak_pss_kib = 0
        self.max_processes = 0
        self.worker_hwm_kib = {}  # per descendant: its own peak RSS (VmHWM)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        pids = [os.getpid()] + descendants()
        rss = sum(status_kib(pid, "VmRSS") for pid in pids)
        pss = sum(pss_kib(pid) for pid in pids)
        self.peak_rss_kib = max(self.peak_rss_kib, rss)
        self.peak_pss_kib = max(self.peak_pss_kib, pss)
        self.max_processes = max(self.max_processes, len(pids))
        for pid in pids[1:]:
            hwm = status_kib(pid, "VmHWM")
            if hwm:
                self.worker_hwm_kib[pid] = max(self.worker_hwm_kib.get(pid, 0), hwm)

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self):
        self.sample()
        self._thread.start()
        return self

    def stop(self):
        """Take a last sample (call it while the workers are alive) and stop."""
        self.sample()
        self._stop.set()
        self._thread.join()

    def report(self):
        """Peaks in MiB: main process's own peak, workers' own peaks, tree sums."""
        main_hwm = status_kib(os.getpid(), "VmHWM")
        workers = sum(self.worker_hwm_kib.values())
        return {
            "main_peak_rss_mib": main_hwm / 1024,
            "workers_peak_rss_mib_sum": workers / 1024,
            "main_plus_workers_peak_rss_mib": (main_hwm + workers) / 1024,
            "tree_peak_rss_mib": self.peak_rss_kib / 1024,
            "tree_peak_pss_mib": self.peak_pss_kib / 1024,
            "processes": self.max_processes,
        }
