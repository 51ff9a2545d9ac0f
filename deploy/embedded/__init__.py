"""The embedded default: PostgreSQL and a Kafka-protocol broker as local processes, no Docker needed.

``make run`` (through ``sailo dev``), the test suite and the benchmarks start them from here. Everything lives
under one data directory (the project uses ``./.sailo``)::

    postgres/       the PostgreSQL cluster (role and database ``sailo``, password ``sailo``, loopback only)
    postgres.log    server log
    broker.log      broker log (its storage is in memory: topics do not survive a restart)
    stack.json      pids and ports of the running processes

Restarting is safe: a PostgreSQL still running on the data directory is reused (or restarted when it listens
on another port), a stale ``postmaster.pid`` left by a crash is cleared, and a broker left by an earlier run
is stopped and replaced. A port held by anything else raises :class:`~deploy.embedded.ports.PortInUse` before
anything starts.

One module per concern:

    stack.py      EmbeddedStack: both servers under one data directory, started and stopped together
    postgres.py   EmbeddedPostgres: the cluster, its initdb, and running it as a system user when root
    broker.py     EmbeddedBroker: the Tansu broker
    ports.py      free_port, PortInUse and the checks made before anything starts
    datadir.py    the data directory's lock and its state file (stack.json)
    processes.py  finding, stopping and reading the log of the processes an earlier run left
    errors.py     EmbeddedError, what every failure here raises
"""
