#!/usr/bin/env python3
"""End-to-end test of spool's SQS endpoint with boto3 over the query protocol.

    sqs_boto3.py [ENDPOINT [ACCESS_KEY SECRET_KEY]] [--keys-required]

ENDPOINT defaults to $SQS_ENDPOINT, the keys to $AWS_ACCESS_KEY_ID and
$AWS_SECRET_ACCESS_KEY. --keys-required (or SQS_KEYS_REQUIRED=1) says the
server was started with --sqs-keys: a wrong secret, an unknown key and an
unsigned request must then be refused; without it, any signature must be
accepted. Run it against a fresh data directory: it asserts on the queues
it finds. It needs a botocore that speaks the query protocol to SQS
(botocore < 1.31, e.g. Debian 12's python3-boto3) and checks that it does.
It uses only the standard library and boto3; it prints one line per check.
"""

import base64
import hashlib
import json
import os
import struct
import sys
import time
import traceback

import boto3
import botocore
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"
REGION = "us-east-1"

checks = 0


def check(name, cond, detail=""):
    """Counts a check and prints it, or fails the run with detail."""
    global checks
    if not cond:
        raise AssertionError("%s: %s" % (name, detail))
    checks += 1
    print("ok   %s" % name, flush=True)


def equal(name, got, want):
    check(name, got == want, "got %r, want %r" % (got, want))


def error_code(fn, *args, **kwargs):
    """Runs a call that must fail; returns its error's code and the error."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e
    raise AssertionError("%s(%r) succeeded, an error was expected" % (fn.__name__, kwargs))


def expect_error(name, code, fn, **kwargs):
    got, e = error_code(fn, **kwargs)
    check(name, got == code, "error code %r (%s), want %r" % (got, e, code))
    return e


def expect_exception(name, exc, fn, **kwargs):
    """Checks a call raises the modeled exception class exc."""
    try:
        fn(**kwargs)
    except exc:
        check(name, True)
        return
    except ClientError as e:
        code = e.response["Error"]["Code"]
        raise AssertionError("%s: raised %s (code %r), want %s" % (name, type(e).__name__, code, exc.__name__))
    raise AssertionError("%s: succeeded, want %s" % (name, exc.__name__))


def expect_ok(name, fn, **kwargs):
    """Checks a call succeeds; returns its reply."""
    try:
        r = fn(**kwargs)
    except ClientError as e:
        raise AssertionError("%s: failed with %s" % (name, e))
    check(name, True)
    return r


def md5_hex(b):
    return hashlib.md5(b).hexdigest()


def md5_of_attributes(attrs):
    """SQS's MD5OfMessageAttributes: names in order; length-prefixed name,
    type, then a transport byte (1 string/number, 2 binary) and the
    length-prefixed value."""
    h = hashlib.md5()

    def put(b):
        h.update(struct.pack(">I", len(b)))
        h.update(b)

    for name in sorted(attrs, key=lambda n: n.encode("utf-8")):
        a = attrs[name]
        put(name.encode("utf-8"))
        put(a["DataType"].encode("utf-8"))
        if a["DataType"].split(".")[0] == "Binary":
            h.update(b"\x02")
            put(a["BinaryValue"])
        else:
            h.update(b"\x01")
            put(a["StringValue"].encode("utf-8"))
    return h.hexdigest()


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    keys_required = "--keys-required" in argv or os.environ.get("SQS_KEYS_REQUIRED") == "1"
    endpoint = args[0] if len(args) > 0 else os.environ.get("SQS_ENDPOINT", "")
    access_key = args[1] if len(args) > 1 else os.environ.get("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    secret_key = args[2] if len(args) > 2 else os.environ.get("AWS_SECRET_ACCESS_KEY", "secret")
    if not endpoint:
        print("usage: sqs_boto3.py ENDPOINT [ACCESS_KEY SECRET_KEY] [--keys-required]", file=sys.stderr)
        return 2
    endpoint = endpoint.rstrip("/")
    print("boto3 %s, botocore %s, endpoint %s, keys %s" % (
        boto3.__version__, botocore.__version__, endpoint, "required" if keys_required else "not required"), flush=True)

    def client(key=access_key, secret=secret_key, **cfg):
        return boto3.session.Session().client(
            "sqs", endpoint_url=endpoint, region_name=REGION,
            aws_access_key_id=key, aws_secret_access_key=secret,
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30, **cfg))

    sqs = client()
    equal("the client speaks the query protocol", sqs.meta.service_model.protocol, "query")
    ex = sqs.exceptions

    def url(name):
        return "%s/%s/%s" % (endpoint, ACCOUNT, name)

    def arn(name):
        return "arn:aws:sqs:%s:%s:%s" % (REGION, ACCOUNT, name)

    def attrs(q, *names):
        return sqs.get_queue_attributes(QueueUrl=q, AttributeNames=list(names) or ["All"])["Attributes"]

    def counts(q):
        a = attrs(q, "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])

    def receive(q, want, **kw):
        """Receives until want messages came (a bounded number of tries)."""
        got = []
        for _ in range(10):
            r = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, **kw)
            got += r.get("Messages", [])
            if len(got) >= want:
                break
        return got

    # --- signatures -------------------------------------------------------
    if keys_required:
        expect_error("a wrong secret is refused", "SignatureDoesNotMatch",
                     client(secret=secret_key + "-wrong").list_queues)
        expect_error("an unknown access key is refused", "InvalidClientTokenId",
                     client(key="AKIDUNKNOWN").list_queues)
        code, _ = error_code(client(signature_version=UNSIGNED).list_queues)
        check("an unsigned request is refused", code in ("MissingAuthenticationToken", "IncompleteSignature"), "code %r" % code)
        sqs.list_queues()
        check("the right key is accepted", True)
    else:
        client(key="AKIDANY", secret="any-secret").list_queues()
        check("without --sqs-keys any signature is accepted", True)

    # --- queues -----------------------------------------------------------
    equal("list_queues on a fresh server has no QueueUrls", sqs.list_queues().get("QueueUrls"), None)
    main_q = sqs.create_queue(QueueName="ci-main", Attributes={"VisibilityTimeout": "30", "DelaySeconds": "0"})["QueueUrl"]
    equal("create_queue returns the queue URL", main_q, url("ci-main"))
    equal("create_queue again with the same attributes returns the URL",
          sqs.create_queue(QueueName="ci-main", Attributes={"VisibilityTimeout": "30"})["QueueUrl"], main_q)
    expect_exception("create_queue with other attributes raises QueueNameExists", ex.QueueNameExists,
                     sqs.create_queue, QueueName="ci-main", Attributes={"VisibilityTimeout": "31"})
    delayed_q = sqs.create_queue(QueueName="ci-delayed", Attributes={"DelaySeconds": "1", "VisibilityTimeout": "5"})["QueueUrl"]
    other_q = sqs.create_queue(QueueName="ci-other")["QueueUrl"]
    equal("get_queue_url", sqs.get_queue_url(QueueName="ci-main")["QueueUrl"], main_q)
    expect_exception("get_queue_url of a missing queue raises QueueDoesNotExist", ex.QueueDoesNotExist,
                     sqs.get_queue_url, QueueName="ci-missing")
    expect_exception("send_message to a missing queue raises QueueDoesNotExist", ex.QueueDoesNotExist,
                     sqs.send_message, QueueUrl=url("ci-missing"), MessageBody="x")
    expect_exception("get_queue_attributes of a missing queue raises QueueDoesNotExist", ex.QueueDoesNotExist,
                     sqs.get_queue_attributes, QueueUrl=url("ci-missing"), AttributeNames=["All"])

    equal("list_queues with a prefix", sorted(sqs.list_queues(QueueNamePrefix="ci-")["QueueUrls"]),
          [delayed_q, main_q, other_q])
    equal("list_queues with a narrower prefix", sqs.list_queues(QueueNamePrefix="ci-m")["QueueUrls"], [main_q])
    equal("list_queues with a prefix matching none", sqs.list_queues(QueueNamePrefix="nomatch").get("QueueUrls"), None)
    page1 = sqs.list_queues(QueueNamePrefix="ci-", MaxResults=2)
    check("list_queues MaxResults=2 gives 2 and a NextToken",
          len(page1["QueueUrls"]) == 2 and page1.get("NextToken"), repr(page1))
    page2 = sqs.list_queues(QueueNamePrefix="ci-", MaxResults=2, NextToken=page1["NextToken"])
    equal("list_queues' next page has the rest", sorted(page1["QueueUrls"] + page2["QueueUrls"]), [delayed_q, main_q, other_q])
    check("list_queues' last page has no NextToken", "NextToken" not in page2, repr(page2))

    a = attrs(main_q)
    equal("get_queue_attributes All: VisibilityTimeout", a.get("VisibilityTimeout"), "30")
    equal("get_queue_attributes All: DelaySeconds", a.get("DelaySeconds"), "0")
    equal("get_queue_attributes All: QueueArn", a.get("QueueArn"), arn("ci-main"))
    equal("get_queue_attributes All: ApproximateNumberOfMessages", a.get("ApproximateNumberOfMessages"), "0")
    equal("get_queue_attributes All: ReceiveMessageWaitTimeSeconds", a.get("ReceiveMessageWaitTimeSeconds"), "0")
    equal("get_queue_attributes All: MessageRetentionPeriod defaults to 4 days", a.get("MessageRetentionPeriod"), "345600")
    check("get_queue_attributes All: no RedrivePolicy without one", "RedrivePolicy" not in a, repr(a))
    equal("get_queue_attributes by name gives only those", attrs(main_q, "VisibilityTimeout", "QueueArn"),
          {"VisibilityTimeout": "30", "QueueArn": arn("ci-main")})
    equal("get_queue_attributes of the delayed queue: DelaySeconds", attrs(delayed_q, "DelaySeconds"), {"DelaySeconds": "1"})

    sqs.set_queue_attributes(QueueUrl=other_q, Attributes={"VisibilityTimeout": "45", "MessageRetentionPeriod": "3600"})
    equal("set_queue_attributes then get", attrs(other_q, "VisibilityTimeout", "MessageRetentionPeriod"),
          {"VisibilityTimeout": "45", "MessageRetentionPeriod": "3600"})
    sqs.set_queue_attributes(QueueUrl=other_q, Attributes={"ReceiveMessageWaitTimeSeconds": "5"})
    equal("set_queue_attributes ReceiveMessageWaitTimeSeconds=5 is kept", attrs(other_q, "ReceiveMessageWaitTimeSeconds"),
          {"ReceiveMessageWaitTimeSeconds": "5"})
    sqs.set_queue_attributes(QueueUrl=other_q, Attributes={"ReceiveMessageWaitTimeSeconds": "0"})
    equal("... and set back to 0", attrs(other_q, "ReceiveMessageWaitTimeSeconds"), {"ReceiveMessageWaitTimeSeconds": "0"})
    expect_error("set_queue_attributes ReceiveMessageWaitTimeSeconds=21 is refused", "InvalidAttributeValue",
                 sqs.set_queue_attributes, QueueUrl=other_q, Attributes={"ReceiveMessageWaitTimeSeconds": "21"})
    expect_error("set_queue_attributes VisibilityTimeout out of range", "InvalidAttributeValue",
                 sqs.set_queue_attributes, QueueUrl=other_q, Attributes={"VisibilityTimeout": "43201"})
    expect_error("set_queue_attributes of an unknown attribute", "InvalidAttributeName",
                 sqs.set_queue_attributes, QueueUrl=other_q, Attributes={"NoSuchAttribute": "1"})
    equal("list_queue_tags has no tags", sqs.list_queue_tags(QueueUrl=main_q).get("Tags"), None)
    sqs.tag_queue(QueueUrl=main_q, Tags={"team": "ops", "tier": "1"})
    sqs.untag_queue(QueueUrl=main_q, TagKeys=["tier"])
    equal("tag_queue then untag_queue", sqs.list_queue_tags(QueueUrl=main_q).get("Tags"), {"team": "ops"})
    # --- FIFO ------------------------------------------------------------
    fifo_q = sqs.create_queue(QueueName="ci-f.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    equal("a FIFO queue's FifoQueue", sqs.get_queue_attributes(QueueUrl=fifo_q, AttributeNames=["All"])["Attributes"].get("FifoQueue"), "true")
    sent_f = [sqs.send_message(QueueUrl=fifo_q, MessageBody=b, MessageGroupId=g) for g, b in (("a", "a1"), ("b", "b1"), ("a", "a2"))]
    dup_f = sqs.send_message(QueueUrl=fifo_q, MessageBody="a1", MessageGroupId="a")
    equal("a content-based duplicate gets the first's MessageId", dup_f["MessageId"], sent_f[0]["MessageId"])
    check("SequenceNumbers increase", sent_f[0]["SequenceNumber"] < sent_f[1]["SequenceNumber"] < sent_f[2]["SequenceNumber"], repr(sent_f))
    got_f = sqs.receive_message(QueueUrl=fifo_q, MaxNumberOfMessages=1, AttributeNames=["All"]).get("Messages", [])
    equal("the first FIFO receive", [(m["Body"], m["Attributes"].get("MessageGroupId")) for m in got_f], [("a1", "a")])
    got_f2 = sqs.receive_message(QueueUrl=fifo_q, MaxNumberOfMessages=10).get("Messages", [])
    equal("group a is held while a1 is in flight", [m["Body"] for m in got_f2], ["b1"])
    sqs.delete_message(QueueUrl=fifo_q, ReceiptHandle=got_f[0]["ReceiptHandle"])
    got_f3 = sqs.receive_message(QueueUrl=fifo_q, MaxNumberOfMessages=10).get("Messages", [])
    equal("a2 after a1 is deleted", [m["Body"] for m in got_f3], ["a2"])
    expect_error("a FIFO send without MessageGroupId", "MissingParameter",
                 sqs.send_message, QueueUrl=fifo_q, MessageBody="x")

    # --- send -------------------------------------------------------------
    t0 = int(time.time() * 1000)
    body = ("x < y && \"quoted\" 'apos' > ]]> <tag a=\"v\"/> &amp; &#x41; "
            "ünïcødé Ωμέγα 日本語 ✓ 😀 \U0010FFFD \ue000 \ufffd\ttab\nnewline\r\ncrlf\rcr, trailing space ")
    mattrs = {
        "str": {"DataType": "String", "StringValue": "<ünï & \"cødé\">"},
        "num": {"DataType": "Number", "StringValue": "-42.5e3"},
        "bin": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe\xff binary"},
        "custom": {"DataType": "Number.float", "StringValue": "3.14"},
        "img": {"DataType": "Binary.gif", "BinaryValue": b"GIF89a\x00"},
        "ci.trace": {"DataType": "String", "StringValue": "t-1"},
    }
    r = sqs.send_message(QueueUrl=main_q, MessageBody=body, MessageAttributes=mattrs)
    check("send_message returns a MessageId", r.get("MessageId"), repr(r))
    equal("send_message's MD5OfMessageBody", r.get("MD5OfMessageBody"), md5_hex(body.encode("utf-8")))
    equal("send_message's MD5OfMessageAttributes", r.get("MD5OfMessageAttributes"), md5_of_attributes(mattrs))
    id_a = r["MessageId"]

    b1_body, b3_body = "batch one ✓", "<b3 x='&lt;'/>"
    b3_attrs = {"label": {"DataType": "String.label", "StringValue": "three"}}
    r = sqs.send_message_batch(QueueUrl=main_q, Entries=[
        {"Id": "b1", "MessageBody": b1_body},
        {"Id": "b2", "MessageBody": "control \x01 character"},
        {"Id": "b3", "MessageBody": b3_body, "MessageAttributes": b3_attrs},
    ])
    ok = {e["Id"]: e for e in r.get("Successful", [])}
    equal("send_message_batch: the valid entries succeed", sorted(ok), ["b1", "b3"])
    failed = r.get("Failed", [])
    equal("send_message_batch: the body with \\x01 fails", [f["Id"] for f in failed], ["b2"])
    equal("send_message_batch: its code is InvalidMessageContents", failed[0]["Code"], "InvalidMessageContents")
    equal("send_message_batch: it is the sender's fault", failed[0]["SenderFault"], True)
    equal("send_message_batch: MD5OfMessageBody of b1", ok["b1"]["MD5OfMessageBody"], md5_hex(b1_body.encode()))
    equal("send_message_batch: MD5OfMessageAttributes of b3", ok["b3"]["MD5OfMessageAttributes"], md5_of_attributes(b3_attrs))
    check("send_message_batch: b1 has no MD5OfMessageAttributes", "MD5OfMessageAttributes" not in ok["b1"], repr(ok["b1"]))
    check("send_message_batch: distinct MessageIds", len({id_a, ok["b1"]["MessageId"], ok["b3"]["MessageId"]}) == 3, repr(ok))
    sent = {id_a: (body, mattrs), ok["b1"]["MessageId"]: (b1_body, None), ok["b3"]["MessageId"]: (b3_body, b3_attrs)}
    equal("3 messages are ready", counts(main_q), (3, 0))

    # --- receive ----------------------------------------------------------
    msgs = receive(main_q, 3, MessageAttributeNames=["All"], AttributeNames=["All"])
    t1 = int(time.time() * 1000)
    equal("receive_message gets the 3 messages", sorted(m["MessageId"] for m in msgs), sorted(sent))
    by_id = {m["MessageId"]: m for m in msgs}
    for mid, (want_body, want_attrs) in sent.items():
        m = by_id[mid]
        equal("message %s: the body round-trips exactly" % mid, m["Body"], want_body)
        equal("message %s: MD5OfBody" % mid, m["MD5OfBody"], md5_hex(want_body.encode("utf-8")))
        sa = m.get("Attributes", {})
        equal("message %s: ApproximateReceiveCount" % mid, sa.get("ApproximateReceiveCount"), "1")
        ts = int(sa.get("SentTimestamp", "0"))
        check("message %s: SentTimestamp is when it was sent" % mid, t0 - 5000 <= ts <= t1 + 5000, "%d not in [%d, %d]" % (ts, t0, t1))
        equal("message %s: MessageAttributes come back typed" % mid, m.get("MessageAttributes"), want_attrs)
        if want_attrs:
            equal("message %s: MD5OfMessageAttributes" % mid, m.get("MD5OfMessageAttributes"), md5_of_attributes(want_attrs))
        check("message %s: has a ReceiptHandle" % mid, m.get("ReceiptHandle"), repr(m))
    m_a = by_id[id_a]
    check("the binary attribute is bytes", isinstance(m_a["MessageAttributes"]["bin"]["BinaryValue"], bytes), repr(m_a))
    equal("receive_message while all are in flight gets none", sqs.receive_message(QueueUrl=main_q).get("Messages"), None)
    equal("3 messages are in flight", counts(main_q), (0, 3))

    # --- visibility -------------------------------------------------------
    sqs.change_message_visibility(QueueUrl=main_q, ReceiptHandle=m_a["ReceiptHandle"], VisibilityTimeout=0)
    check("change_message_visibility to 0", True)
    again = receive(main_q, 1, MessageAttributeNames=["str", "ci.*"], AttributeNames=["ApproximateReceiveCount"])
    equal("the message is received again at once", [m["MessageId"] for m in again], [id_a])
    a2 = again[0]
    equal("... with ApproximateReceiveCount 2 and only the system attribute asked for", a2.get("Attributes"), {"ApproximateReceiveCount": "2"})
    want_sub = {"str": mattrs["str"], "ci.trace": mattrs["ci.trace"]}
    equal("... with only the message attributes asked for (a name and a prefix)", a2.get("MessageAttributes"), want_sub)
    equal("... and their MD5OfMessageAttributes", a2.get("MD5OfMessageAttributes"), md5_of_attributes(want_sub))
    sqs.change_message_visibility(QueueUrl=main_q, ReceiptHandle=a2["ReceiptHandle"], VisibilityTimeout=60)
    check("change_message_visibility to 60", True)
    equal("the extended message is not received", sqs.receive_message(QueueUrl=main_q).get("Messages"), None)
    expect_exception("change_message_visibility of a garbage handle raises ReceiptHandleIsInvalid", ex.ReceiptHandleIsInvalid,
                     sqs.change_message_visibility, QueueUrl=main_q, ReceiptHandle="not-a-receipt-handle", VisibilityTimeout=0)

    id_b1, id_b3 = ok["b1"]["MessageId"], ok["b3"]["MessageId"]
    r = sqs.change_message_visibility_batch(QueueUrl=main_q, Entries=[
        {"Id": "v1", "ReceiptHandle": by_id[id_b1]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "v3", "ReceiptHandle": by_id[id_b3]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "bad", "ReceiptHandle": "garbage", "VisibilityTimeout": 0},
    ])
    equal("change_message_visibility_batch: the valid entries succeed", sorted(e["Id"] for e in r.get("Successful", [])), ["v1", "v3"])
    equal("change_message_visibility_batch: the garbage handle fails", [(f["Id"], f["Code"]) for f in r.get("Failed", [])],
          [("bad", "ReceiptHandleIsInvalid")])
    again = receive(main_q, 2, AttributeNames=["ApproximateReceiveCount"])
    equal("the 2 are received again", sorted(m["MessageId"] for m in again), sorted([id_b1, id_b3]))
    equal("... each a second time", [m["Attributes"]["ApproximateReceiveCount"] for m in again], ["2", "2"])
    equal("... bodies intact", sorted(m["Body"] for m in again), sorted([b1_body, b3_body]))

    # --- delete -----------------------------------------------------------
    sqs.delete_message(QueueUrl=main_q, ReceiptHandle=a2["ReceiptHandle"])
    check("delete_message", True)
    sqs.delete_message(QueueUrl=main_q, ReceiptHandle=a2["ReceiptHandle"])
    check("delete_message of a deleted message succeeds, as in SQS", True)
    expect_exception("delete_message of a garbage handle raises ReceiptHandleIsInvalid", ex.ReceiptHandleIsInvalid,
                     sqs.delete_message, QueueUrl=main_q, ReceiptHandle="not-a-receipt-handle")
    r = sqs.delete_message_batch(QueueUrl=main_q, Entries=[
        {"Id": "d%d" % i, "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(again)
    ] + [{"Id": "bad", "ReceiptHandle": "garbage"}])
    equal("delete_message_batch: the valid entries succeed", sorted(e["Id"] for e in r.get("Successful", [])), ["d0", "d1"])
    equal("delete_message_batch: the garbage handle fails", [(f["Id"], f["Code"], f["SenderFault"]) for f in r.get("Failed", [])],
          [("bad", "ReceiptHandleIsInvalid", True)])
    equal("the queue is empty", counts(main_q), (0, 0))

    # --- batch errors -----------------------------------------------------
    eleven = [{"Id": "e%d" % i, "MessageBody": "m"} for i in range(11)]
    expect_exception("send_message_batch of 11 raises TooManyEntriesInBatchRequest", ex.TooManyEntriesInBatchRequest,
                     sqs.send_message_batch, QueueUrl=main_q, Entries=eleven)
    expect_exception("send_message_batch with a repeated Id raises BatchEntryIdsNotDistinct", ex.BatchEntryIdsNotDistinct,
                     sqs.send_message_batch, QueueUrl=main_q, Entries=[{"Id": "x", "MessageBody": "1"}, {"Id": "x", "MessageBody": "2"}])
    expect_exception("send_message_batch of none raises EmptyBatchRequest", ex.EmptyBatchRequest,
                     sqs.send_message_batch, QueueUrl=main_q, Entries=[])
    expect_exception("send_message_batch with an Id holding a dot raises InvalidBatchEntryId", ex.InvalidBatchEntryId,
                     sqs.send_message_batch, QueueUrl=main_q, Entries=[{"Id": "a.b", "MessageBody": "1"}])
    expect_exception("delete_message_batch of none raises EmptyBatchRequest", ex.EmptyBatchRequest,
                     sqs.delete_message_batch, QueueUrl=main_q, Entries=[])
    expect_exception("delete_message_batch of 11 raises TooManyEntriesInBatchRequest", ex.TooManyEntriesInBatchRequest,
                     sqs.delete_message_batch, QueueUrl=main_q, Entries=[{"Id": "e%d" % i, "ReceiptHandle": "h"} for i in range(11)])
    expect_exception("change_message_visibility_batch with a repeated Id raises BatchEntryIdsNotDistinct", ex.BatchEntryIdsNotDistinct,
                     sqs.change_message_visibility_batch, QueueUrl=main_q, Entries=[
                         {"Id": "x", "ReceiptHandle": "h", "VisibilityTimeout": 1}, {"Id": "x", "ReceiptHandle": "h", "VisibilityTimeout": 1}])
    equal("the failed batches sent nothing", counts(main_q), (0, 0))

    # --- delay --------------------------------------------------------------
    sqs.send_message(QueueUrl=delayed_q, MessageBody="late")
    equal("a message on a DelaySeconds=1 queue is not received at once", sqs.receive_message(QueueUrl=delayed_q).get("Messages"), None)
    equal("... it counts as delayed", attrs(delayed_q, "ApproximateNumberOfMessagesDelayed"), {"ApproximateNumberOfMessagesDelayed": "1"})
    r = sqs.receive_message(QueueUrl=delayed_q, WaitTimeSeconds=5)
    equal("... a long poll gets it when the delay ends", [m["Body"] for m in r.get("Messages", [])], ["late"])
    sqs.delete_message(QueueUrl=delayed_q, ReceiptHandle=r["Messages"][0]["ReceiptHandle"])

    # --- purge --------------------------------------------------------------
    sqs.send_message_batch(QueueUrl=other_q, Entries=[{"Id": "p%d" % i, "MessageBody": "purge me %d" % i} for i in range(5)])
    equal("5 messages before purge_queue", counts(other_q), (5, 0))
    sqs.purge_queue(QueueUrl=other_q)
    equal("purge_queue empties the queue", counts(other_q), (0, 0))
    equal("nothing to receive after purge_queue", sqs.receive_message(QueueUrl=other_q).get("Messages"), None)
    r = expect_ok("receive_message with empty AttributeNames and MessageAttributeNames", sqs.receive_message,
                  QueueUrl=other_q, AttributeNames=[], MessageAttributeNames=[])
    equal("... gets nothing from the empty queue", r.get("Messages"), None)
    r = expect_ok("get_queue_attributes with empty AttributeNames", sqs.get_queue_attributes,
                  QueueUrl=other_q, AttributeNames=[])
    equal("... gives no attributes", r.get("Attributes"), None)

    # --- dead-letter queue --------------------------------------------------
    dlq = sqs.create_queue(QueueName="ci-dlq")["QueueUrl"]
    dlq_arn = attrs(dlq, "QueueArn")["QueueArn"]
    equal("the DLQ's QueueArn", dlq_arn, arn("ci-dlq"))
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
    src = sqs.create_queue(QueueName="ci-src", Attributes={"RedrivePolicy": policy, "VisibilityTimeout": "30"})["QueueUrl"]
    got = json.loads(attrs(src, "RedrivePolicy")["RedrivePolicy"])
    equal("the RedrivePolicy reads back", (got.get("deadLetterTargetArn"), int(got.get("maxReceiveCount", 0))), (dlq_arn, 1))
    equal("list_dead_letter_source_queues of the DLQ", sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"], [src])
    equal("list_dead_letter_source_queues of a queue no one redrives to", sqs.list_dead_letter_source_queues(QueueUrl=main_q).get("queueUrls", []), [])
    expect_exception("list_dead_letter_source_queues of a missing queue raises QueueDoesNotExist", ex.QueueDoesNotExist,
                     sqs.list_dead_letter_source_queues, QueueUrl=url("ci-missing"))
    expect_error("a RedrivePolicy naming a missing queue is refused", "InvalidAttributeValue",
                 sqs.set_queue_attributes, QueueUrl=other_q,
                 Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn("ci-missing"), "maxReceiveCount": 3})})
    dead_body = "dead ✝ <letter/>"
    sqs.send_message(QueueUrl=src, MessageBody=dead_body)
    m = receive(src, 1)
    equal("the source queue's message is received", [x["Body"] for x in m], [dead_body])
    sqs.change_message_visibility(QueueUrl=src, ReceiptHandle=m[0]["ReceiptHandle"], VisibilityTimeout=0)
    m = []
    for _ in range(20):  # moved on release or on the next receive; allow either
        if sqs.receive_message(QueueUrl=src).get("Messages"):
            raise AssertionError("the message was received again past maxReceiveCount 1")
        m = sqs.receive_message(QueueUrl=dlq).get("Messages", [])
        if m:
            break
        time.sleep(0.1)
    equal("past maxReceiveCount the message is in the DLQ", [x["Body"] for x in m], [dead_body])
    sqs.set_queue_attributes(QueueUrl=src, Attributes={"RedrivePolicy": ""})
    check("an empty RedrivePolicy removes it", "RedrivePolicy" not in attrs(src), repr(attrs(src)))
    equal("... and the DLQ has no source queue", sqs.list_dead_letter_source_queues(QueueUrl=dlq).get("queueUrls", []), [])

    # --- delete_queue -------------------------------------------------------
    for q in (main_q, delayed_q, other_q, fifo_q, src, dlq):
        sqs.delete_queue(QueueUrl=q)
    check("delete_queue of each", True)
    expect_exception("get_queue_url of a deleted queue raises QueueDoesNotExist", ex.QueueDoesNotExist,
                     sqs.get_queue_url, QueueName="ci-main")
    equal("list_queues after delete_queue", sqs.list_queues(QueueNamePrefix="ci-").get("QueueUrls"), None)

    print("sqs boto3: %d checks passed" % checks, flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as e:  # an assertion, or a call that failed unexpectedly
        if not isinstance(e, AssertionError):
            traceback.print_exc()
        print("FAIL %s" % e, file=sys.stderr, flush=True)
        print("sqs boto3: FAILED after %d checks passed" % checks, file=sys.stderr, flush=True)
        sys.exit(1)
