"""A real one-node Slurm cluster (munge + slurmctld + slurmd) and a real sshd on 127.0.0.1.

Used by the HPC tests (session fixture ``cluster`` in ``tests/test_hpc.py``) and by
``benchmarks/dispatch.py``.  Needs root and the Debian packages ``slurm-wlm``, ``munge``
and ``openssh-server`` (``run.sh`` installs them).  Every daemon runs in the foreground
as a child of this process and is stopped by its PID in :meth:`Cluster.stop`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SLURM_CONF = """\
ClusterName=dpgenlite
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/slurmd
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerParameters=sched_interval=1
MinJobAge=3600
MaxJobCount=20000
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=other Nodes=localhost Default=NO MaxTime=INFINITE State=UP
"""

SSHD_CONF = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {root}/ssh/host_key
PidFile {root}/ssh/sshd.pid
AuthorizedKeysFile {root}/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
SetEnv SLURM_CONF={root}/slurm.conf
Match User {password_user}
    PasswordAuthentication yes
    PermitRootLogin yes
"""
#: the user of :meth:`Cluster.password_login`
PASSWORD_USER = "dpgenlite-pw"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Start munged, slurmctld, slurmd (one node, ``cpus`` CPUs) and sshd; stop them by PID.

    Attributes after :meth:`start`: ``root`` (the folder of every config, log and key),
    ``slurm_conf`` (exported as ``SLURM_CONF`` in this process), ``ssh_port``,
    ``ssh_key`` (private key file accepted for root@127.0.0.1).

    Raises
    ------
    RuntimeError
        from :meth:`start` when a daemon does not come up within ``timeout`` seconds
        (its log is in the message); every daemon already started is stopped first.
    """

    def __init__(self, cpus: int | None = None, timeout: float = 30.0):
        self.cpus = cpus or os.cpu_count() or 1
        self.timeout = timeout
        self.procs: list[subprocess.Popen] = []
        self.names: list[str] = []  # daemon of each process
        self.commands: list[list[str]] = []
        # every folder above munge's socket must be 0755 (pytest's 0700 tmp folders are refused)
        self.root = Path(tempfile.mkdtemp(prefix="dpgen_lite_hpc_", dir="/tmp"))
        self.root.chmod(0o755)
        self.slurm_conf = self.root / "slurm.conf"
        self.ssh_port = free_port()
        self.ssh_key = self.root / "ssh" / "id_ed25519"
        self.password: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "Cluster":
        """Write the configuration, start the daemons, wait until a node is idle and sshd answers."""
        try:
            self._start_munge()
            self._start_slurm()
            self._start_sshd()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, cleanup: bool = True) -> None:
        """Stop every daemon this object started (SIGTERM, then SIGKILL), by PID; with
        ``cleanup``, remove :attr:`root`."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        self.names.clear()
        self.commands.clear()
        if self.password is not None:
            subprocess.run(["userdel", "-f", PASSWORD_USER], capture_output=True)
            self.password = None
        if cleanup:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """Environment variables every Slurm client needs (``SLURM_CONF``)."""
        return {"SLURM_CONF": str(self.slurm_conf)}

    # -- daemons ---------------------------------------------------------------------------

    def _spawn(self, args: list[str], log: str, register: bool = True) -> subprocess.Popen:
        out = open(self.root / log, "ab")
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **self.env}, start_new_session=True)
        out.close()
        if register:
            self.procs.append(proc)
            self.names.append(Path(args[0]).name)
            self.commands.append(args)
        return proc

    def _wait(self, what: str, ok, log: str) -> None:
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if ok():
                return
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                break
            time.sleep(0.2)
        text = (self.root / log).read_text(errors="replace")[-3000:] if (self.root / log).exists() else ""
        raise RuntimeError(f"{what} did not start; {log}:\n{text}")

    def _start_munge(self) -> None:
        d = self.root / "munge"
        d.mkdir(mode=0o755)
        d.chmod(0o755)
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = d / "munge.socket"
        self._spawn(["munged", "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
                     f"--pid-file={d / 'munged.pid'}", f"--log-file={d / 'munged.log'}",
                     f"--seed-file={d / 'munged.seed'}"], "munged.out")
        self._wait("munged", sock.exists, "munged.out")

    def _start_slurm(self) -> None:
        for sub in ("ctld", "slurmd"):
            (self.root / sub).mkdir()
        self.slurm_conf.write_text(SLURM_CONF.format(
            root=self.root, ctld_port=free_port(), slurmd_port=free_port(), cpus=self.cpus))
        os.environ.update(self.env)
        self._spawn(["slurmctld", "-D", "-i", "-f", str(self.slurm_conf)], "slurmctld.out")
        self._spawn(["slurmd", "-D", "-N", "localhost", "-f", str(self.slurm_conf)], "slurmd.out")

        def idle() -> bool:
            """The node is up (sinfo answers with a usable state)."""
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
            return out.returncode == 0 and out.stdout.strip() in ("idle", "mix", "alloc")

        self._wait("slurm", idle, "slurmctld.log")

    def _start_sshd(self) -> None:
        d = self.root / "ssh"
        d.mkdir()
        for key, kind in ((d / "host_key", "ed25519"), (self.ssh_key, "ed25519")):
            subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)], check=True)
        shutil.copy(self.ssh_key.with_suffix(".pub"), d / "authorized_keys")
        Path("/run/sshd").mkdir(exist_ok=True)
        conf = d / "sshd_config"
        conf.write_text(SSHD_CONF.format(root=self.root, port=self.ssh_port, password_user=PASSWORD_USER))
        self._spawn([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", str(conf)], "sshd.out")

        def answers() -> bool:
            """sshd sends its banner on the port."""
            try:
                with socket.create_connection(("127.0.0.1", self.ssh_port), timeout=1) as s:
                    return s.recv(4).startswith(b"SSH")
            except OSError:
                return False

        self._wait("sshd", answers, "sshd.out")

    # -- queries for tests -----------------------------------------------------------------

    def submitted_job_ids(self) -> list[int]:
        """Ids of every job submitted to this cluster so far (slurmctld's log)."""
        import re
        text = (self.root / "slurmctld.log").read_text(errors="replace")
        return [int(m) for m in re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", text)]

    def queue(self) -> list[dict]:
        """Every job slurmctld knows (finished ones included): dicts with ``id``, ``state``,
        ``name``, ``partition`` and ``workdir``."""
        out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%j|%P|%Z"], capture_output=True,
                             text=True, check=True)
        keys = ("id", "state", "name", "partition", "workdir")
        return [dict(zip(keys, line.split("|"))) for line in out.stdout.splitlines() if line.strip()]

    def drop_ssh_connections(self) -> int:
        """Kill (by PID) every per-connection process of the sshd started here, as when the
        network drops; return how many."""
        master = self.procs[-1].pid
        killed = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == master:  # ppid
                os.kill(int(stat.parent.name), signal.SIGKILL)
                killed += 1
        return killed

    def password_login(self) -> dict:
        """A ``remote_profile`` that logs in with a password: the user ``dpgenlite-pw``, created now
        as another name of root (uid 0, so its jobs read this machine's Python under /root) with a
        random password and removed by :meth:`stop`; the only login sshd accepts by password."""
        if self.password is None:
            subprocess.run(["userdel", "-f", PASSWORD_USER], capture_output=True)  # left by a killed session
            subprocess.run(["useradd", "-o", "-u", "0", "-g", "0", "-M", "-d", "/root", "-s", "/bin/bash",
                            PASSWORD_USER], check=True, capture_output=True)
            self.password = "pw-" + os.urandom(12).hex()
            subprocess.run(["chpasswd"], input=f"{PASSWORD_USER}:{self.password}", text=True, check=True)
        return {"hostname": "127.0.0.1", "username": PASSWORD_USER, "port": self.ssh_port,
                "password": self.password, "look_for_keys": False, "timeout": 10}

    def restart(self, daemon: str) -> None:
        """Stop ``daemon`` (``slurmctld`` or ``sshd``: SIGTERM, by PID) and start it again, as an
        administrator restarting a service; its state (Slurm's jobs) is kept."""
        k = self.names.index(daemon)
        proc = self.procs[k]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        self.procs[k] = self._spawn(self.commands[k], f"{daemon}.out", register=False)

    def ssh_machine(self, remote_root: str, batch_type: str = "Slurm") -> dict:
        """A dpdispatcher machine dict that reaches this cluster as root@127.0.0.1 over SSH."""
        return {
            "batch_type": batch_type, "context_type": "SSHContext", "remote_root": remote_root,
            "remote_profile": {"hostname": "127.0.0.1", "username": "root", "port": self.ssh_port,
                               "key_filename": str(self.ssh_key), "timeout": 10},
        }


@pytest.fixture(scope="session")
def cluster():
    """The session's :class:`Cluster`, started once; its daemons are stopped by PID at the end."""
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()
