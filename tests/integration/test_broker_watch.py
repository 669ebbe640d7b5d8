"""The group's lag as the broker reports it, and a broker that does not answer."""

from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from hub import kafka
from hub.broker import free_port
from hub.config import Settings
from hub.grouplag import BrokerWatch
from schemas import catalog


def test_lag_is_the_log_end_against_the_groups_commit(topics: Settings) -> None:
    physical = topics.topic(catalog.LEAD_REQUESTS)
    producer: KafkaProducer = kafka.producer(topics)
    for i in range(5):
        producer.send(physical, key=b"k", value=b"v%d" % i, partition=0)
        producer.flush()  # one record per batch: an offset per record on every broker
    producer.close()
    group = topics.group("watched")
    registry = CollectorRegistry()
    watch = BrokerWatch(topics, component="routing", group=group,
                        topics=[catalog.LEAD_REQUESTS], registry=registry)

    def lag() -> float | None:
        return registry.get_sample_value("passport_hub_consumer_group_lag_records", {
            "group": group, "topic": catalog.LEAD_REQUESTS, "partition": "0"})

    try:
        assert watch.check()
        end = lag()
        assert end is not None
        assert end >= 5  # nothing committed: the whole log
        assert registry.get_sample_value("passport_hub_broker_up", {"component": "routing"}) == 1
        consumer: KafkaConsumer = kafka.consumer(topics, group=group)
        tp = TopicPartition(physical, 0)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(2, "", -1)})
        consumer.close(autocommit=False)
        assert watch.check()
        assert lag() == end - 2
    finally:
        watch.stop()


def test_an_unreachable_broker_reads_as_down_and_keeps_no_stale_claim(
        topics: Settings) -> None:
    nowhere = topics.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
                                        "request_timeout_ms": 1000})
    registry = CollectorRegistry()
    watch = BrokerWatch(nowhere, component="passport", group=nowhere.group("passport"),
                        topics=[catalog.ENROLMENTS], registry=registry)
    try:
        assert not watch.check()
        assert watch.up is False
        assert registry.get_sample_value("passport_hub_broker_up", {"component": "passport"}) == 0
    finally:
        watch.stop()
