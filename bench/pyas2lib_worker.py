"""pyas2lib timed in process, for `as2-bench`.

Reads one JSON command per line on stdin and answers one JSON line on
stdout, so the interpreter starts once and its start-up is never timed:

  {"op": "setup", "a_key": PATH, "a_cert": PATH, "b_key": PATH, "b_cert": PATH}
  {"op": "load", "file": PATH}                      the payload to work on
  {"op": "build", "compress": BOOL, "reps": N}      A builds for B (signed
                                                    SHA-256, AES-256-CBC,
                                                    signed MDN asked for)
  {"op": "parse", "reps": N}                        B parses the last built
                                                    message and builds the
                                                    signed MDN
  {"op": "rss"}                                     peak resident memory (KiB)

Each timed answer is {"seconds": per-operation seconds}; errors are
{"error": text}.
"""

import json
import resource
import sys
import time

from pyas2lib import Message, Organization, Partner


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Worker:
    def __init__(self):
        self.payload = None
        self.built = None

    def setup(self, cmd):
        a_key, a_cert = read(cmd["a_key"]), read(cmd["a_cert"])
        b_key, b_cert = read(cmd["b_key"]), read(cmd["b_cert"])
        self.a = Organization(as2_name="A", sign_key=a_key + b"\n" + a_cert,
                              decrypt_key=a_key + b"\n" + a_cert)
        self.b = Organization(as2_name="B", sign_key=b_key + b"\n" + b_cert,
                              decrypt_key=b_key + b"\n" + b_cert)
        self.b_cert, self.a_cert = b_cert, a_cert
        return {}

    def partner_b(self, compress):
        return Partner(as2_name="B", verify_cert=self.b_cert, encrypt_cert=self.b_cert,
                       validate_certs=False, compress=compress, sign=True,
                       digest_alg="sha256", encrypt=True, enc_alg="aes_256_cbc",
                       mdn_mode="SYNC", mdn_digest_alg="sha256")

    def load(self, cmd):
        self.payload = read(cmd["file"])
        self.built = None
        return {}

    def build(self, cmd):
        partner = self.partner_b(bool(cmd.get("compress")))
        reps = int(cmd.get("reps", 1))
        start = time.perf_counter()
        for _ in range(reps):
            message = Message(sender=self.a, receiver=partner)
            message.build(self.payload, filename="bench.edi",
                          content_type="application/edi-x12")
        seconds = (time.perf_counter() - start) / reps
        head = "".join(f"{k}: {v}\r\n" for k, v in message.headers.items())
        self.built = head.encode("latin-1") + b"\r\n" + message.content
        return {"seconds": seconds}

    def parse(self, cmd):
        if self.built is None:
            raise ValueError("build first")
        partner_a = Partner(as2_name="A", verify_cert=self.a_cert, encrypt_cert=self.a_cert,
                            validate_certs=False, sign=True, encrypt=True)
        reps = int(cmd.get("reps", 1))
        start = time.perf_counter()
        for _ in range(reps):
            message = Message()
            status, (exc, _trace), mdn = message.parse(
                self.built,
                find_org_cb=lambda as2_to: self.b if as2_to == "B" else None,
                find_partner_cb=lambda as2_from: partner_a if as2_from == "A" else None,
            )
        seconds = (time.perf_counter() - start) / reps
        if status != "processed" or exc is not None or mdn is None or mdn.content is None:
            raise ValueError(f"pyas2lib did not process its own message: {status} {exc}")
        if message.content != self.payload:
            raise ValueError("pyas2lib's parse returned other bytes than it built")
        return {"seconds": seconds}

    def rss(self, _cmd):
        return {"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def main():
    worker = Worker()
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            answer = getattr(worker, cmd["op"])(cmd)
        except Exception as exc:  # reported to the bench, which stops
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
