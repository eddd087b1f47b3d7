#!/usr/bin/env python3
"""An independent AS2 peer for the interoperability tests, driven by pyas2lib.

Each subcommand plays one step of an AS2 exchange the way pyas2 (the Django
AS2 server built on pyas2lib) does it, reading files and printing one JSON
object on stdout:

  build       build a message to POST (HTTP headers + exact body bytes)
  receive     parse an inbound message and build the MDN pyas2lib answers
  verify-mdn  parse an MDN answering a message we sent, and check its MIC

"org" is always this station (its PKCS#8 key and certificate), "partner" the
other side (its certificate only). Exit status: 0 when the JSON was printed,
even if it reports an AS2 failure (tests assert on "status"); 1 when the
inputs are unusable (message on stderr); 2 for command-line usage errors.

Run it with the venv made by setup-venv.sh. See README.md.
"""

import argparse
import base64
import email.message
import json
import logging
import re
import sys

DIGESTS = ("sha1", "sha224", "sha256", "sha384", "sha512")
CIPHERS = ("tripledes_192_cbc", "aes_128_cbc", "aes_192_cbc", "aes_256_cbc")
# Off: with it on, pyas2lib checks each partner certificate with pyOpenSSL
# (chain and validity dates; it trusts a self-signed one as its own root), so
# an expired test certificate fails with the unhelpful message "d". Trust is
# the connector's business in these tests, not pyas2lib's.
VALIDATE_CERTS = False
DOMAIN = "pyas2.interop"  # right side of Message-IDs; avoids a getfqdn() lookup


class PeerError(Exception):
    """Bad input: reported on stderr with exit status 1."""


try:
    from pyas2lib import Mdn, Message, Organization, Partner
except Exception as exc:  # an unpatched oscrypto fails here, see setup-venv.sh
    sys.exit(f"pyas2_peer: cannot import pyas2lib ({type(exc).__name__}: {exc}); "
             "run tests/interop/setup-venv.sh and use the venv's python")


def read_bytes(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise PeerError(f"cannot read {what} {path!r}: {exc.strerror}") from exc


def read_headers(path):
    """A JSON list of [name, value] pairs, as received over HTTP."""
    try:
        headers = json.loads(read_bytes(path, "headers file"))
    except ValueError as exc:
        raise PeerError(f"headers file {path!r} is not JSON: {exc}") from exc
    if not isinstance(headers, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h)
        for h in headers
    ):
        raise PeerError(f"headers file {path!r} must hold a list of [name, value] strings")
    return headers


def raw_http_message(headers, body):
    """What pyas2lib's parse() wants: the HTTP headers as a MIME header block,
    then the body. CRLF as on the wire; Python's email parser accepts both."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    try:
        return head.encode("latin-1") + b"\r\n" + body
    except UnicodeEncodeError as exc:
        raise PeerError(f"header text is not ISO-8859-1, as HTTP headers must be: {exc}") from exc


def http_headers(payload_headers):
    """pyas2lib's headers as HTTP header pairs. Its values are unfolded
    already; unfold any stray line break anyway, HTTP forbids them."""
    return [[k, re.sub(r"\r?\n[ \t]*", " ", str(v))] for k, v in payload_headers.items()]


def b64(data):
    return base64.b64encode(data).decode("ascii") if data is not None else None


def text(value):
    return value.decode("ascii") if isinstance(value, bytes) else value


def load_org(args):
    """Organization wants key and certificate in one PEM (or PKCS#12) blob."""
    key = read_bytes(args.org_key, "--org-key")
    cert = read_bytes(args.org_cert, "--org-cert")
    if b"ENCRYPTED PRIVATE KEY" in key:
        raise PeerError(f"--org-key {args.org_key!r} is encrypted; give an unencrypted PKCS#8 PEM")
    try:
        return Organization(
            as2_name=args.org_id,
            sign_key=key + b"\n" + cert,
            decrypt_key=key + b"\n" + cert,
            mdn_url=getattr(args, "mdn_url", None),
            domain=DOMAIN,
        )
    except Exception as exc:
        raise PeerError(f"cannot load --org-key/--org-cert: {exc}") from exc


def partner_cert(args):
    cert = read_bytes(args.partner_cert, "--partner-cert")
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        raise PeerError(f"--partner-cert {args.partner_cert!r} is not a PEM certificate")
    return cert


def cmd_build(args):
    org = load_org(args)
    cert = partner_cert(args)
    data = read_bytes(args.file, "--file")
    if args.mdn == "none" and args.mdn_url:
        raise PeerError("--mdn-url needs --mdn unsigned or signed")
    try:
        partner = Partner(
            as2_name=args.partner_id,
            verify_cert=cert,
            encrypt_cert=cert,
            validate_certs=VALIDATE_CERTS,
            compress=args.compress,
            sign=args.sign != "none",
            digest_alg=args.sign if args.sign != "none" else "sha256",
            encrypt=args.encrypt != "none",
            enc_alg=args.encrypt if args.encrypt != "none" else "tripledes_192_cbc",
            mdn_mode=None if args.mdn == "none" else ("ASYNC" if args.mdn_url else "SYNC"),
            mdn_digest_alg=args.mdn_digest if args.mdn == "signed" else None,
        )
        message = Message(sender=org, receiver=partner)
        message.build(
            data,
            filename=args.filename,
            subject=args.subject,
            content_type=args.content_type,
            message_id=args.message_id,
        )
    except Exception as exc:
        raise PeerError(f"pyas2lib could not build the message: {type(exc).__name__}: {exc}") from exc
    return {
        "headers": http_headers(message.headers),
        "body_b64": b64(message.content),
        "message_id": message.message_id,
        # pyas2lib computes a MIC only for signed messages (null otherwise).
        "mic": text(message.mic),
        "mic_alg": message.digest_alg,
    }


def payload_filename(payload, headers):
    """The filename in the payload's own Content-Disposition.

    parse() appends every HTTP header to the payload it extracted, so
    payload.get_filename() returns "smime.p7m" (the envelope's) when the
    payload had none. The payload's own headers come first: drop the
    appended ones by count."""
    found = payload.get_all("Content-Disposition") or []
    appended = sum(1 for name, _ in headers if name.lower() == "content-disposition")
    own = found[: len(found) - appended]
    if not own:
        return None
    holder = email.message.Message()
    holder["Content-Disposition"] = own[0]
    return holder.get_filename()


def cmd_receive(args):
    org = load_org(args)
    cert = partner_cert(args)
    headers = read_headers(args.headers_json)
    body = read_bytes(args.body, "--body")
    try:
        partner = Partner(
            as2_name=args.partner_id,
            verify_cert=cert,
            encrypt_cert=cert,
            validate_certs=VALIDATE_CERTS,
            # pyas2lib rejects unsigned/unencrypted messages only when told to.
            sign=args.require_signed,
            encrypt=args.require_encrypted,
        )
    except Exception as exc:
        raise PeerError(f"bad partner settings: {exc}") from exc

    message = Message()
    seen = set()
    if args.seen:
        try:
            with open(args.seen, encoding="utf-8") as f:
                seen = {line.strip() for line in f if line.strip()}
        except FileNotFoundError:
            pass
    # Unknown AS2 names get None, which pyas2lib turns into the
    # "unknown-trading-partner" disposition, as a real server would.
    try:
        status, (exc, _trace), mdn = message.parse(
            raw_http_message(headers, body),
            find_org_cb=lambda as2_to: org if as2_to == org.as2_name else None,
            find_partner_cb=lambda as2_from: partner if as2_from == partner.as2_name else None,
            # pyas2's duplicate check: a Message-ID already processed from this partner.
            find_message_cb=lambda message_id, _partner: message_id in seen,
        )
    except Exception as err:
        # parse() turns processing errors into a disposition, but not errors
        # while answering: an unusable signed-receipt-micalg, or a signed MDN
        # asked of an unknown partner (pyas2lib 1.4.4 reads sender.sign_alg).
        raise PeerError(f"pyas2lib crashed while parsing or building the MDN: "
                        f"{type(err).__name__}: {err}") from err
    detailed = None
    if exc is not None:  # parse() hides this, though its MDN carries it
        detailed = getattr(exc, "disposition_modifier", "unexpected-processing-error")
    processed = exc is None
    if processed and args.seen:
        with open(args.seen, "a", encoding="utf-8") as f:
            f.write(message.message_id + "\n")
    return {
        "status": status,
        "detailed_status": detailed,
        "error": f"{type(exc).__name__}: {exc}" if exc is not None else None,
        "message_id": message.message_id,
        "signed": message.signed,
        "encrypted": message.encrypted,
        "compressed": message.compressed,
        "payload_b64": b64(message.content) if processed else None,
        "filename": payload_filename(message.payload, headers) if processed else None,
        "content_type": message.payload.get_content_type() if processed else None,
        "mic": text(message.mic),
        "mic_alg": message.digest_alg,
        "mdn_mode": mdn.mdn_mode if mdn else None,
        "mdn_url": mdn.mdn_url if mdn else None,
        "mdn_headers": http_headers(mdn.headers) if mdn else None,
        "mdn_body_b64": b64(mdn.content) if mdn else None,
    }


def norm_alg(alg):
    return alg.strip().lower().replace("-", "") if alg else None


def mdn_report_fields(mdn):
    """The Received-Content-MIC of the parsed MDN as (mic, alg).

    Mdn.parse() compares only the base64 value and only when the disposition
    is "processed"; the tests also want the algorithm and the raw values."""
    for part in mdn.payload.walk():
        if part.get_content_type() == "message/disposition-notification":
            for fields in part.get_payload():
                value = fields.get("Received-Content-MIC")
                if value:
                    mic, _, alg = value.partition(",")
                    return mic.strip(), alg.strip() or None
    return None, None


def cmd_verify_mdn(args):
    org = load_org(args)
    cert = partner_cert(args)
    headers = read_headers(args.headers_json)
    body = read_bytes(args.body, "--body")
    sent_id = args.message_id.strip().strip("<>")
    try:
        partner = Partner(
            as2_name=args.partner_id,
            verify_cert=cert,
            validate_certs=VALIDATE_CERTS,
            # Set, pyas2lib fails an unsigned MDN (as if we had asked for a signed one).
            mdn_digest_alg="sha256" if args.expect_signed else None,
        )
    except Exception as exc:
        raise PeerError(f"bad partner settings: {exc}") from exc

    # Mdn.parse() looks the original message up to get its MIC and partner.
    original = Message(sender=org, receiver=partner)
    original.message_id = sent_id
    original.mic = args.mic.encode("ascii") if args.mic else None

    def find_message(orig_id, _orig_recipient):
        return original if orig_id == sent_id else None

    mdn = Mdn()
    status, detailed = mdn.parse(raw_http_message(headers, body), find_message)
    signed = any(
        name.lower() == "content-type" and value.strip().lower().startswith("multipart/signed")
        for name, value in headers
    )
    mdn_mic, mdn_mic_alg = (None, None)
    if mdn.payload is not None:
        mdn_mic, mdn_mic_alg = mdn_report_fields(mdn)
    mic_ok = None  # nothing to compare: no --mic given
    if args.mic:
        mic_ok = mdn_mic == args.mic.strip() and (
            not args.mic_alg or norm_alg(mdn_mic_alg) == norm_alg(args.mic_alg)
        )
    return {
        "status": status,
        "detailed_status": detailed,
        "mic_ok": mic_ok,
        "signed": signed,
        "signature_digest_alg": mdn.digest_alg if signed else None,
        "original_message_id": mdn.orig_message_id,
        "mdn_message_id": mdn.message_id,
        "mdn_mic": mdn_mic,
        "mdn_mic_alg": mdn_mic_alg,
    }


def parser():
    top = argparse.ArgumentParser(
        description="AS2 peer built on pyas2lib, for interoperability tests (JSON on stdout).")
    top.add_argument("-v", "--verbose", action="store_true",
                     help="log pyas2lib's debug output (MIME dumps) to stderr")
    sub = top.add_subparsers(dest="command", required=True)

    def stations(p):
        p.add_argument("--org-id", required=True, help="AS2 name of this station")
        p.add_argument("--org-key", required=True, help="this station's private key (PKCS#8 PEM, unencrypted)")
        p.add_argument("--org-cert", required=True, help="this station's certificate (PEM)")
        p.add_argument("--partner-id", required=True, help="AS2 name of the other station")
        p.add_argument("--partner-cert", required=True, help="the other station's certificate (PEM)")

    b = sub.add_parser("build", help="build a message from org to partner")
    stations(b)
    b.add_argument("--file", required=True, help="the payload")
    b.add_argument("--sign", choices=("none",) + DIGESTS, default="sha256")
    b.add_argument("--encrypt", choices=("none",) + CIPHERS, default="aes_256_cbc")
    b.add_argument("--compress", action="store_true", help="compress before signing")
    b.add_argument("--mdn", choices=("none", "unsigned", "signed"), default="signed")
    b.add_argument("--mdn-digest", choices=DIGESTS, default="sha256",
                   help="signed-receipt-micalg to ask for (with --mdn signed)")
    b.add_argument("--mdn-url", help="ask for an asynchronous MDN to this URL")
    b.add_argument("--content-type", default="application/edi-x12")
    b.add_argument("--filename", help="Content-Disposition filename of the payload")
    b.add_argument("--subject", default="AS2 Message")
    b.add_argument("--message-id", help="left side of the Message-ID (default: random)")
    b.set_defaults(run=cmd_build)

    r = sub.add_parser("receive", help="parse a message from partner to org, build the MDN")
    stations(r)
    r.add_argument("--headers-json", required=True, help="JSON list of [name, value] HTTP headers")
    r.add_argument("--body", required=True, help="the raw HTTP body")
    r.add_argument("--require-signed", action="store_true", help="reject unsigned messages")
    r.add_argument("--require-encrypted", action="store_true", help="reject unencrypted messages")
    r.add_argument("--seen", help="file of Message-IDs processed before: repeats get "
                   "processed/warning: duplicate-document; processed ones are added")
    r.set_defaults(run=cmd_receive)

    v = sub.add_parser("verify-mdn", help="parse the MDN partner sent for a message from org")
    stations(v)
    v.add_argument("--message-id", required=True, help="Message-ID of the message we sent")
    v.add_argument("--mic", help="base64 MIC we computed for it (omit: mic_ok is null)")
    v.add_argument("--mic-alg", help="its algorithm (sha256 or sha-256 style); omit to skip")
    v.add_argument("--headers-json", required=True, help="JSON list of [name, value] HTTP headers")
    v.add_argument("--body", required=True, help="the raw HTTP body")
    v.add_argument("--expect-signed", action="store_true", help="fail an unsigned MDN")
    v.set_defaults(run=cmd_verify_mdn)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    # pyas2lib logs parse failures at ERROR; they go to stderr, stdout stays JSON.
    logging.basicConfig(stream=sys.stderr, format="pyas2lib: %(levelname)s %(message)s",
                        level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        result = args.run(args)
    except PeerError as exc:
        print(f"pyas2_peer {args.command}: error: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
