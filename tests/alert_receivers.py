"""Local stand-ins for where alerts go: a Slack-like webhook (records each JSON body, can fail
its first requests) and a small SMTP server (EHLO, AUTH PLAIN, MAIL, RCPT, DATA; records each
message). Both on 127.0.0.1, port chosen by the OS."""
import base64
import json
import socketserver
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


class SmtpServer:
    def __init__(self, user=None, password=None):
        self.messages = []
        self.logins = []
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line):
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self):
                self.reply("220 localhost test SMTP")
                while line := self.rfile.readline():
                    command = line.decode().strip()
                    verb = command.split(" ")[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250-localhost")
                        self.reply("250 AUTH PLAIN")
                    elif verb == "AUTH":
                        _, given_user, given_password = base64.b64decode(
                            command.split(" ")[2]).split(b"\0")
                        ok = (given_user.decode(), given_password.decode()) == (user, password)
                        server.logins.append(given_user.decode())
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
