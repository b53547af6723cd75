"""The benchmark behind ./scripts/bench.

It runs the same librdkafka workloads against our broker, a peer broker and a
sink that acks and drops (the client's ceiling), alternating the systems run
by run, and reports medians and per-pair ratios. Modules:

    __main__   command line
    workloads  what is measured (names, sizes, steps)
    client     one workload step driven with confluent-kafka (a subprocess)
    sink       the Kafka-protocol sink that acks and drops (and serves fetches)
    brokers    starting, probing and stopping the systems under test
    cluster    the 3-broker cluster (with its ZooKeeper) and its controller failover
    procstat   CPU time, peak RSS and children of a process, from /proc
    toolsenv   the bench's own virtualenv for the tools it fetches
    tansu      the default peer: Tansu, installed into that virtualenv
    kafka      the peer --peer kafka: Apache Kafka, run as the JVM itself
    compaction the log cleaner's speed (compaction-1KiB)
    interference  produce and consume beside an idle, then a busy, log cleaner
    runner     the A B A B loop
    report     medians, ratios, the table and the JSON file
    targets    the issue's performance targets, checked against the medians
    machine    a description of the machine the figures come from
    profile    an optional py-spy profile of our broker during a workload
"""
