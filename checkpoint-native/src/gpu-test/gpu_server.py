"""A minimal GPU inference server, for the cold-boot-against-restore check (ServerRound in GpuCheck).

Two commands:

  make-model DIR [--layers N --hidden N --intermediate N]
      builds a Llama-shaped transformers causal LM from a config alone, with seeded random weights (no download),
      on the GPU in bf16, and saves it to DIR as config.json + safetensors. Prints one line:
      "MODEL bytes=... params=... seconds=...".

  serve DIR --port P [--exec-epoch-ms T]
      what a model server does at start: import torch and transformers, load DIR's weights to the GPU
      (from_pretrained, device_map="cuda", bf16), then answer HTTP on 127.0.0.1:P:
        GET  /healthz    {"ready": true, "pid": ..., "timeline": {...}}
        POST /generate   {"input_ids": [...], "max_new_tokens": N} -> {"tokens": [...], "seconds": ...}
      Greedy decoding with the KV cache, so the same weights and prompt give the same tokens: a restored process
      must answer token for token as the cold-booted one did. The first forward runs inside the first request
      (cuBLAS and the kernels start then), so "exec to first token" covers all of a cold start.
      Each response is HTTP/1.0 and closes its connection: no connection outlives a request, so a checkpoint
      taken between requests holds none. The timeline gives each start phase in seconds after --exec-epoch-ms
      (the caller's clock at exec). Logs go to stderr; the process exits by itself after --max-seconds.
"""

import argparse
import json
import os
import sys
import threading
import time

EXEC_EPOCH = None


def log(msg):
    print(f"[gpu_server {os.getpid()}] {msg}", file=sys.stderr, flush=True)


def since_exec():
    return round(time.time() - EXEC_EPOCH, 4) if EXEC_EPOCH is not None else None


def make_model(args):
    t0 = time.perf_counter()
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=32000, hidden_size=args.hidden, intermediate_size=args.intermediate,
                      num_hidden_layers=args.layers, num_attention_heads=16, num_key_value_heads=4,
                      max_position_embeddings=2048, tie_word_embeddings=False)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg)
    # every weight set explicitly from one seed, whatever the library's initialisation does: matrices ~N(0, 0.02),
    # norm scales 1
    gen = torch.Generator(device="cuda")
    gen.manual_seed(20261204)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    model = model.to(torch.bfloat16)
    os.makedirs(args.dir, exist_ok=True)
    model.save_pretrained(args.dir)
    files = [f for f in os.listdir(args.dir) if f.endswith(".safetensors")]
    if not files:
        raise SystemExit(f"save_pretrained wrote no .safetensors file in {args.dir}: {os.listdir(args.dir)}")
    nbytes = sum(os.path.getsize(os.path.join(args.dir, f)) for f in files)
    params = sum(p.numel() for p in model.parameters())
    os.sync()
    print(f"MODEL bytes={nbytes} params={params} files={len(files)} seconds={time.perf_counter() - t0:.2f}"
          f" torch={torch.__version__} transformers={__import__('transformers').__version__}", flush=True)


def serve(args):
    global EXEC_EPOCH
    EXEC_EPOCH = args.exec_epoch_ms / 1000.0 if args.exec_epoch_ms else time.time()
    timeline = {"python_started": since_exec()}
    import torch
    timeline["torch_imported"] = since_exec()
    from transformers import AutoModelForCausalLM
    timeline["transformers_imported"] = since_exec()
    torch.cuda.init()
    torch.zeros(1, device="cuda")
    timeline["cuda_context"] = since_exec()
    model = AutoModelForCausalLM.from_pretrained(args.dir, dtype=torch.bfloat16, device_map="cuda")
    model.eval()
    torch.cuda.synchronize()
    timeline["weights_on_gpu"] = since_exec()
    lock = threading.Lock()

    @torch.inference_mode()
    def generate(ids, n):
        with lock:
            x = torch.tensor([ids], dtype=torch.long, device="cuda")
            out = model(input_ids=x, use_cache=True)
            past = out.past_key_values
            tok = int(out.logits[0, -1].argmax())
            tokens = [tok]
            for _ in range(n - 1):
                out = model(input_ids=torch.tensor([[tok]], dtype=torch.long, device="cuda"), past_key_values=past,
                            use_cache=True)
                past = out.past_key_values
                tok = int(out.logits[0, -1].argmax())
                tokens.append(tok)
            last_max = float(out.logits[0, -1].float().max())
            return tokens, last_max

    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request a connection: none is open between requests

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/healthz":
                self.reply(200, {"ready": True, "pid": os.getpid(), "timeline": timeline})
            else:
                self.reply(404, {"error": f"no such path {self.path}"})

        def do_POST(self):
            if self.path != "/generate":
                self.reply(404, {"error": f"no such path {self.path}"})
                return
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                ids = [int(i) for i in req["input_ids"]]
                n = int(req.get("max_new_tokens", 1))
                if not ids or n < 1 or n > 512:
                    raise ValueError("input_ids must not be empty and max_new_tokens must be 1..512")
            except (ValueError, KeyError, TypeError) as e:
                self.reply(400, {"error": f"bad request: {e}"})
                return
            t0 = time.perf_counter()
            try:
                tokens, last_max = generate(ids, n)
            except Exception as e:  # reported to the caller, who fails the check with it
                log(f"generate failed: {e!r}")
                self.reply(500, {"error": f"{type(e).__name__}: {e}"})
                return
            if "first_token" not in timeline:
                timeline["first_token"] = since_exec()
            self.reply(200, {"tokens": tokens, "seconds": round(time.perf_counter() - t0, 4), "last_max_logit": last_max,
                             "pid": os.getpid(), "timeline": timeline})

        def log_message(self, fmt, *a):
            pass  # one line per request would be noise in the check's log

    server = HTTPServer(("127.0.0.1", args.port), Handler)
    timeline["listening"] = since_exec()
    log(f"serving {args.dir} on 127.0.0.1:{args.port}; timeline {timeline}")
    server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-model")
    m.add_argument("dir")
    m.add_argument("--layers", type=int, default=24)
    m.add_argument("--hidden", type=int, default=2048)
    m.add_argument("--intermediate", type=int, default=8192)
    s = sub.add_parser("serve")
    s.add_argument("dir")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--exec-epoch-ms", type=int, default=0)
    for sp in (m, s):
        sp.add_argument("--max-seconds", type=float, default=600)
    args = p.parse_args()

    def watchdog():
        time.sleep(args.max_seconds)
        log(f"still running after {args.max_seconds} s: exiting")
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    if args.cmd == "make-model":
        make_model(args)
    else:
        serve(args)


if __name__ == "__main__":
    sys.exit(main())
