"""Local stand-ins for where alerts go: a Slack-like webhook (records each JSON body, can fail
its first requests) and a small SMTP server (EHLO, STARTTLS when given a certificate, AUTH PLAIN,
MAIL, RCPT, DATA; records each message and each login, with whether it came over TLS). Both on
127.0.0.1, port chosen by the OS; self_signed_certificate() makes a certificate for it."""
import base64
import datetime
import ipaddress
import json
import socketserver
import ssl
import threading
from email import message_from_bytes
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class AlertWebhook:
    def __init__(self):
        self.bodies = []
        self.fail_first = 0  # answer this many requests with `fail_status`
        self.fail_status = 500
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.lock:
                    failing = hook.fail_first > 0
                    if failing:
                        hook.fail_first -= 1
                    else:
                        hook.bodies.append(json.loads(body))
                status = hook.fail_status if failing else 200
                answer = b"upstream down" if failing else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/s3cr3tt0ken"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kinds(self):
        with self.lock:
            return [body["kind"] for body in self.bodies]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def self_signed_certificate(folder):
    """(certificate path, key path): a self-signed certificate for 127.0.0.1, in PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class SmtpServer:
    """`certificate` ((cert path, key path)): STARTTLS is offered, and AUTH refused before it."""

    def __init__(self, user=None, password=None, certificate=None):
        self.messages = []
        self.logins = []
        self.tls_logins = []  # per login: whether it came after STARTTLS
        server = self
        tls = None
        if certificate is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(*map(str, certificate))

        class Handler(socketserver.StreamRequestHandler):
            encrypted = False

            def reply(self, line):
                self.wfile.write(line.encode() + b"\r\n")

            def finish(self):
                super().finish()
                if self.encrypted:  # the TLS socket took the connection's file descriptor over
                    self.connection.close()

            def handle(self):
                self.reply("220 localhost test SMTP")
                while line := self.rfile.readline():
                    command = line.decode().strip()
                    verb = command.split(" ")[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250-localhost")
                        if tls is not None and not self.encrypted:
                            self.reply("250-STARTTLS")
                        self.reply("250 AUTH PLAIN")
                    elif verb == "STARTTLS" and tls is not None and not self.encrypted:
                        self.reply("220 go ahead")
                        self.wfile.flush()
                        try:
                            self.connection = tls.wrap_socket(self.connection, server_side=True)
                        except (ssl.SSLError, OSError):
                            return  # the client refused our certificate
                        self.encrypted = True
                        self.rfile = self.connection.makefile("rb")
                        self.wfile = self.connection.makefile("wb", buffering=0)
                    elif verb == "AUTH" and tls is not None and not self.encrypted:
                        self.reply("530 must issue STARTTLS first")
                    elif verb == "AUTH":
                        _, given_user, given_password = base64.b64decode(
                            command.split(" ")[2]).split(b"\0")
                        ok = (given_user.decode(), given_password.decode()) == (user, password)
                        server.logins.append(given_user.decode())
                        server.tls_logins.append(self.encrypted)
                        self.reply("235 ok" if ok else "535 bad credentials")
                    elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                        self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        data = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data += chunk[1:] if chunk.startswith(b"..") else chunk
                        server.messages.append(message_from_bytes(data, policy=default))
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not here")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
