import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from manga_intent.drift import window_kl
from manga_intent.shipped_data import OOD, ood_fitting_pool, ood_heldout_pool, read_rows
from manga_intent.taxonomy import SEED_TRAFFIC_SHARES
from serving.simulator import (
    SCENARIOS,
    main,
    observed_kl,
    post_stream,
    simulate,
)


def test_stationary_windows_stay_under_0_005():
    stream = simulate("stationary", 6000, seed=3)
    labels = [m["true_label"] for m in stream]
    for start in range(0, 4001, 500):  # sliding 2,000-message windows carry real sampling noise
        assert window_kl(labels[start : start + 2000], SEED_TRAFFIC_SHARES) < 0.005


def test_sale_scenario_exceeds_drift_threshold_as_claimed():
    scenario = SCENARIOS["seasonal_sale"]
    assert scenario.intent_shares["promotion"] == pytest.approx(0.20)
    assert sum(scenario.intent_shares.values()) == pytest.approx(1.0)
    stream = simulate("seasonal_sale", 2000, seed=1)
    assert observed_kl(stream) > 0.02
    assert observed_kl(stream) == pytest.approx(scenario.expected_kl, abs=0.01)
    promo = sum(m["true_label"] == "promotion" for m in stream) / len(stream)
    assert promo == pytest.approx(0.20, abs=0.01)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_matches_its_expected_kl(name):
    stream = simulate(name, 2000, seed=0)
    assert abs(observed_kl(stream) - SCENARIOS[name].expected_kl) < 0.005
    assert all(
        set(m) >= {"ts", "text", "channel", "true_label", "is_ood", "segment", "scenario"} for m in stream
    )
    times = [m["ts"] for m in stream]
    assert times == sorted(times)


def test_ood_surge_and_asr_surge_and_new_vocabulary():
    ood = simulate("ood_surge", 2000, seed=0)
    share = sum(m["is_ood"] for m in ood) / len(ood)
    assert share == pytest.approx(0.25, abs=0.03)
    assert all(m["true_label"] is None for m in ood if m["is_ood"])
    sim_texts = {r["text"] for r in ood_heldout_pool()}
    assert {m["text"] for m in ood if m["is_ood"] and "voice_asr" not in m["segment"]} <= sim_texts
    assert not sim_texts & {r["text"] for r in ood_fitting_pool()}
    assert len(sim_texts) + len(ood_fitting_pool()) == len(read_rows(OOD.path))

    asr = simulate("asr_surge", 2000, seed=0)
    voice = [m for m in asr if m["channel"] == "voice"]
    assert len(voice) / len(asr) == pytest.approx(0.40, abs=0.03)
    assert all("voice_asr" in m["segment"] and "plain" not in m["segment"] for m in voice)
    assert all(m["text"] == m["text"].lower() for m in voice)

    from manga_intent.synthetic import lexicon

    novel = simulate("new_vocabulary", 500, seed=0)
    novel_titles = [t.lower() for t, _ in lexicon.NOVEL_TITLES]
    assert sum(any(t in m["text"].lower() for t in novel_titles) for m in novel) > 50


def test_deterministic_per_seed():
    assert simulate("seasonal_sale", 300, seed=5) == simulate("seasonal_sale", 300, seed=5)
    assert simulate("seasonal_sale", 300, seed=5) != simulate("seasonal_sale", 300, seed=6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown scenario"):
        simulate("black_friday", 10)
    with pytest.raises(ValueError, match="n must be >= 1"):
        simulate("stationary", 0)


class _Recorder(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Recorder.received.append(body)
        reply = json.dumps({"intent": "faq"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def test_posts_to_an_http_endpoint_and_writes_stream(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/classify"
        stream = simulate("stationary", 20, seed=0)
        replies = list(post_stream(stream, url))
        assert len(replies) == 20 and _Recorder.received[0] == {
            "text": stream[0]["text"],
            "channel": stream[0]["channel"],
        }
        out = tmp_path / "s.jsonl"
        assert main(["--scenario", "ood_surge", "--n", "30", "--out", str(out), "--post", url]) == 0
        assert len(out.read_text().splitlines()) == 30 and len(_Recorder.received) == 50
    finally:
        server.shutdown()
