"""Real clients nobody here wrote: Hugging Face text-generation, lorax-client
and openai, each generating and streaming greedy text against the server."""
import openai
from lorax import Client as LoraxClient
from text_generation import Client as TgiClient

from conftest import cli_greedy

PROMPT = "First Citizen:\n"
N = 20


def test_text_generation_client(server):
    want = cli_greedy(PROMPT, N)
    client = TgiClient(server.url, timeout=60)
    r = client.generate(PROMPT, max_new_tokens=N)
    assert r.generated_text == want
    assert r.details.generated_tokens == N and r.details.finish_reason.value == "length"
    streamed = "".join(t.token.text for t in client.generate_stream(PROMPT, max_new_tokens=N) if not t.token.special)
    assert streamed == want


def test_lorax_client(server):
    want = cli_greedy(PROMPT, N)
    client = LoraxClient(server.url, timeout=60)
    r = client.generate(PROMPT, max_new_tokens=N)
    assert r.generated_text == want
    assert r.details.prompt_tokens == 4
    pieces = []
    final = None
    for event in client.generate_stream(PROMPT, max_new_tokens=N):
        pieces.append(event.token.text)
        final = event
    assert "".join(pieces) == want and final.generated_text == want


def test_openai_client(server):
    want = cli_greedy(PROMPT, N)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    c = client.completions.create(model="neox-shakespeare", prompt=PROMPT, max_tokens=N, temperature=0)
    assert c.choices[0].text == want
    assert c.usage.completion_tokens == N
    stream = client.completions.create(model="neox-shakespeare", prompt=PROMPT, max_tokens=N, temperature=0, stream=True)
    assert "".join(chunk.choices[0].text for chunk in stream if chunk.choices) == want
    chat = client.chat.completions.create(model="neox-shakespeare", max_tokens=N, temperature=0,
                                          messages=[{"role": "user", "content": "Speak."}])
    text = chat.choices[0].message.content
    assert chat.choices[0].finish_reason in ("length", "stop") and isinstance(text, str)
    stream = client.chat.completions.create(model="neox-shakespeare", max_tokens=N, temperature=0, stream=True,
                                            messages=[{"role": "user", "content": "Speak."}])
    assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == text
