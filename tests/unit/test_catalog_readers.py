"""The catalog says who reads and writes each topic: held here to what the code consumes.

Readers are taken from what each one declares and really subscribes to: a processor's
``inputs`` and its restorer's ``checkpoints`` (read back on a takeover), the routers'
reseller table, the read model's topics, the demo CRMs' reader and the dead-letter tool.
Writers of partner input are the edges that publish the partner models' topics.
"""

from __future__ import annotations

from connectors.crm_webhook.processor import DeliveryProcessor
from connectors.dlq import letters
from connectors.file_drop.rows import models_by_tag
from connectors.synthetic import crm
from schemas import catalog
from services.passport.processor import PassportProcessor
from services.passport.restore import PassportRestorer
from services.readmodel import materialiser
from services.routing import table
from services.routing.processor import RoutingProcessor
from services.routing.restore import RoutingRestorer

#: What each consumer reads, from its own declarations.
READS: dict[str, set[str]] = {
    "passport": {*PassportProcessor.inputs, *PassportRestorer.checkpoints},
    "routing": {*RoutingProcessor.inputs, *RoutingRestorer.checkpoints, *table.TOPICS},
    "crm_webhook": set(DeliveryProcessor.inputs),
    "readmodel": set(materialiser.TOPICS),
    "synthetic": set(crm.TOPICS),
    "dlq": set(letters.TOPICS),
}


def test_every_topic_names_exactly_the_consumers_that_read_it() -> None:
    wrong = {}
    for topic in catalog.CATALOG:
        really = {who for who, reads in READS.items() if topic.name in reads}
        if set(topic.readers) != really:
            wrong[topic.name] = (sorted(topic.readers), sorted(really))
    assert not wrong, f"catalog readers (said, real): {wrong}"


def test_every_topic_a_consumer_reads_is_in_the_catalog() -> None:
    names = {topic.name for topic in catalog.CATALOG}
    for who, reads in READS.items():
        assert reads <= names, (who, reads - names)


def test_partner_input_topics_are_written_by_the_ingest_edges_and_only_those() -> None:
    partner_topics = {model.TOPIC for model in models_by_tag().values()}
    for topic in catalog.CATALOG:
        edges = {"api", "file_drop", "synthetic"} <= set(topic.writers)
        assert edges == (topic.name in partner_topics), topic.name
