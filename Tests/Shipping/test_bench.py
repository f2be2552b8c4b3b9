"""The benches' own arithmetic (bench/common.py): what a side's processes cost and what the cores allow.
No timing is asserted; the CPU figures come from the kernel's accounting of work the test itself does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def test_machine_busy_is_every_tick_but_idle_and_iowait():
    # user nice system idle iowait irq softirq steal guest guest_nice (guest is already counted inside user)
    stat = ("cpu  100 5 50 1000 20 3 2 1 7 0\n"
            "cpu0 50 2 25 500 10 1 1 0 3 0\n"
            "intr 12345\n")
    assert common.machine_busy_seconds(stat) == pytest.approx((100 + 5 + 50 + 3 + 2 + 1) / HZ)
    with pytest.raises(ValueError):
        common.machine_busy_seconds("intr 1\n")
    # The machine's own figure only grows.
    first = common.machine_busy_seconds()
    assert common.machine_busy_seconds() >= first


@pytest.mark.parametrize("baseline_seconds, candidate_cpu, cpus, busiest, ceiling", [
    (1.0, 2.0, 2, 0.0, 1.0),    # the candidate needs exactly both cores for the baseline's time
    (0.4, 1.2, 2, 0.33, 2 / 3),  # 64 streams: nginx direct 0.4 s/GiB, the gateway's side 1.2 CPU s/GiB on 2 cores
    (0.86, 1.2, 2, 0.45, 1.4333333),  # a baseline that left a core idle: the cores are not what limits the ratio
    (0.56, 1.12, 2, 0.67, 0.56 / 0.67),  # one thread longer than the CPU per core: it is the limit
    (1.0, 1.0, 1, 0.0, 1.0),
])
def test_the_ceiling_is_the_baseline_time_over_the_candidates_least_time(baseline_seconds, candidate_cpu, cpus,
                                                                         busiest, ceiling):
    assert common.cpu_bound_ceiling(baseline_seconds, candidate_cpu, cpus, busiest) == pytest.approx(ceiling)
    # The CPU a goal leaves the candidate is the CPU at which the ceiling (of the CPU alone) equals the goal.
    budget = common.cpu_budget_for(0.7, baseline_seconds, cpus)
    assert common.cpu_bound_ceiling(baseline_seconds, budget, cpus) == pytest.approx(0.7)


def _burn(seconds: float) -> None:
    """Keeps this process on the CPU for `seconds` of its own CPU time."""
    start = os.times()
    while (os.times().user + os.times().system) - (start.user + start.system) < seconds:
        pass


def test_a_meter_charges_each_role_and_the_client_with_what_they_used():
    me = os.getpid()
    meter = common.CostMeter({"gateway": lambda: [me], "idle": lambda: []}, client="curl")
    child = [sys.executable, "-c", "import os\nt=os.times()\nwhile os.times().user + os.times().system - t.user - t.system < 0.3: pass"]

    def transfer():
        _burn(0.2)  # the "gateway" role is this process
        subprocess.run(child, check=True)  # the "client": a child waited for
        return "done"

    result, cost = meter.measure(transfer)
    assert result == "done"
    assert cost.cpu["gateway"] >= 0.2 - 1 / HZ
    assert cost.cpu["curl"] >= 0.3 - 1 / HZ
    # The busiest thread: the child's one (0.3 s) rather than this thread's (0.2 s).
    assert cost.busiest_role == "curl" and cost.busiest_thread == cost.cpu["curl"]
    assert cost.cpu["idle"] == 0
    assert cost.total_cpu == pytest.approx(sum(cost.cpu.values()))
    # The machine was busy at least with what this process and its child did.
    assert cost.machine_busy >= 0.5 - 3 / HZ
    # A transfer's own time, when it reports one, is the cost's time.
    _, timed = meter.measure(lambda: 2.5, seconds=lambda reported: reported)
    assert timed.seconds == 2.5


def test_a_thread_that_starts_during_the_transfer_counts_from_zero():
    import threading
    import time
    me = os.getpid()
    burnt, done = threading.Event(), threading.Event()

    def worker():  # burns 0.25 s of its own CPU time, then stays alive until the meter has looked
        start = time.thread_time()
        while time.thread_time() - start < 0.25:
            pass
        burnt.set()
        done.wait()

    thread = threading.Thread(target=worker)
    meter = common.CostMeter({"gateway": lambda: [me]})
    _, cost = meter.measure(lambda: thread.start() or burnt.wait())
    done.set()
    thread.join()
    assert cost.busiest_role == "gateway"
    assert 0.25 - 1 / HZ <= cost.busiest_thread <= cost.cpu["gateway"]


def test_costs_and_ceiling_print_every_role_and_the_verdict(capsys):
    base = [common.Cost(seconds=0.4, cpu={"nginx": 0.22, "curl": 0.38}, machine_busy=0.6, busiest_thread=0.38,
                        busiest_role="curl")] * 3
    cand = [common.Cost(seconds=0.64, cpu={"gateway": 0.70, "nginx": 0.15, "curl": 0.33}, machine_busy=1.2,
                        busiest_thread=0.33, busiest_role="curl")] * 3
    common.print_costs("gateway (enc)", cand, gib=1.0)
    common.print_ceiling("gateway / nginx direct", cand, base, 0.7, gib=1.0)
    out = capsys.readouterr().out
    assert "gateway 0.70, nginx 0.15, curl 0.33; total 1.18" in out
    assert "busiest thread 0.33 (curl); wall 0.64 s/GiB" in out
    assert f"cores busy 1.84 of {common.cores()}" in out
    cpus = common.cores()
    ceiling = 0.4 / max(1.18 / cpus, 0.33)
    budget = cpus * 0.4 / 0.7
    assert f"ceiling of gateway / nginx direct: median {ceiling:.2f}" in out
    assert f"goal 0.7 needs <= {budget:.2f} CPU s/GiB of them and no thread above {0.4 / 0.7:.2f}, they used 1.18 and 0.33" in out
    assert ("reachable only by cutting CPU" in out) == (1.18 > budget)
    assert "at the baseline's core use: 0.51" in out


WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:40000/bench/plain
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.84ms    2.01ms  40.11ms   80.00%
    Req/Sec     3.19k   210.00     3.60k    70.00%
  Latency Distribution
     50%    9.84ms
     75%   11.00ms
     90%   12.50ms
     99%  {p99}
  {requests} requests in 5.00s, 27.00MB read
{errors}Requests/sec:   6354.20
Transfer/sec:      5.40MB
"""


def test_wrk_output_gives_rate_latencies_in_seconds_and_the_request_count():
    import request_rate

    result = request_rate.parse_wrk(WRK_OUTPUT.format(p99="526.00us", requests=31771, errors=""), "url")
    assert result == {"rps": 6354.2, "p50": pytest.approx(9.84e-3), "p99": pytest.approx(526e-6), "requests": 31771}
    assert request_rate.parse_wrk(WRK_OUTPUT.format(p99="1.50s", requests=7, errors=""), "url")["p99"] == 1.5


def test_wrk_output_with_failed_answers_is_an_error():
    import request_rate

    text = WRK_OUTPUT.format(p99="13.75ms", requests=100, errors="  Non-2xx or 3xx responses: 3\n")
    with pytest.raises(common.s3gw.HarnessError, match="3 non-2xx"):
        request_rate.parse_wrk(text, "url")


@pytest.mark.parametrize("keepalive", [0, 128])
def test_the_proxy_forwards_to_its_own_files_or_to_the_nginx_named(tmp_path, keepalive):
    own = common.nginx_conf(tmp_path, 41000, 41001, upstream_keepalive=keepalive)
    other = common.nginx_conf(tmp_path, 41000, 41001, upstream_keepalive=keepalive, proxy_to="127.0.0.1:42000")
    target = "server 127.0.0.1:{};" if keepalive else "proxy_pass http://127.0.0.1:{};"
    assert target.format(41000) in own and "42000" not in own
    assert target.format(42000) in other and target.format(41000) not in other
    for conf in (own, other):  # both still serve their own files and proxy on their own ports
        assert "listen 127.0.0.1:41000;" in conf and "listen 127.0.0.1:41001;" in conf
