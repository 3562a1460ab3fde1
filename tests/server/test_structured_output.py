"""Structured output end to end: JSON schemas, regular expressions and
json_object through every API that asks for them (TGI `grammar`, LoRAX and
OpenAI `response_format`), sampled at temperature 1, checked with the
`jsonschema` package and `re.fullmatch`; every refusal is a 422 naming what."""
import concurrent.futures
import json
import random
import re

import jsonschema
import lorax
import openai
import requests
import text_generation
from text_generation.types import Grammar, GrammarType


def random_schema(rng, depth=0):
    kinds = ["string", "string", "integer", "number", "boolean", "enum", "null", "anyOf"]
    if depth < 2:
        kinds += ["object", "array"]
    kind = rng.choice(kinds)
    if kind == "string":
        s = {"type": "string", "maxLength": rng.randint(1, 10)}
        if rng.random() < 0.3:
            s["minLength"] = rng.randint(0, s["maxLength"])
        if rng.random() < 0.1:
            s = {"type": "string", "format": rng.choice(["date", "time", "uuid", "date-time", "email"])}
        elif rng.random() < 0.1:
            s = {"type": "string", "pattern": "^[A-Z][a-z]{1,6}( [0-9]{1,3})?$"}
        return s
    if kind == "integer":
        s = {"type": "integer"}
        if rng.random() < 0.6:
            lo = rng.randint(-500, 500)
            s.update(minimum=lo, maximum=lo + rng.randint(0, 2000))
        elif rng.random() < 0.5:
            s["exclusiveMinimum"] = rng.randint(-50, 50)
        return s
    if kind == "number":
        s = {"type": "number"}
        if rng.random() < 0.4:
            lo = rng.randint(-10, 10)
            s.update(minimum=lo, maximum=lo + rng.randint(1, 30))
        return s
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "null":
        return {"type": "null"}
    if kind == "enum":
        pool = ["red", "green", "blue", 1, 2, 3.5, None, True, "Verona", "o'er"]
        return {"enum": rng.sample(pool, rng.randint(1, 4))}
    if kind == "anyOf":
        return {"anyOf": [random_schema(rng, depth + 1) for _ in range(rng.randint(2, 3))]}
    if kind == "array":
        s = {"type": "array", "items": random_schema(rng, depth + 1), "maxItems": rng.randint(1, 3)}
        if rng.random() < 0.5:
            s["minItems"] = rng.randint(0, s["maxItems"])
        return s
    return random_object(rng, depth)


def random_object(rng, depth):
    names = rng.sample(["name", "age", "city", "tags", "score", "lover", "house", "act", "scene", "line"],
                       rng.randint(1, 4 if depth == 0 else 3))
    props = {n: random_schema(rng, depth + 1) for n in names}
    required = [n for n in names if rng.random() < 0.7]
    s = {"type": "object", "properties": props, "required": required}
    if rng.random() < 0.5:
        s["additionalProperties"] = False
    return s


def generate(server, body):
    return requests.post(server.url + "/generate", json=body, timeout=600)


def test_a_hundred_random_schemas_sampled_at_temperature_one(server):
    rng = random.Random(2026)
    schemas = [random_object(rng, 0) for _ in range(100)]

    def run(i):
        body = {"inputs": ["ROMEO:", "JULIET:\nWho is there?", "A list of players:"][i % 3],
                "parameters": {"do_sample": True, "temperature": 1.0, "seed": i, "max_new_tokens": 600,
                               "details": True, "grammar": {"type": "json", "value": schemas[i]}}}
        if i % 4 == 1:
            body["parameters"]["top_k"] = 50
        if i % 4 == 2:
            body["parameters"]["top_p"] = 0.95
        r = generate(server, body)
        assert r.status_code == 200, r.text
        return r.json()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(100)))
    complete = 0
    for schema, result in zip(schemas, results):
        reason = result["details"]["finish_reason"]
        text = result["generated_text"]
        if reason == "length":  # cut off: must not pass for valid
            try:
                jsonschema.validate(json.loads(text), schema)
                raise AssertionError(f"a valid output was reported as cut off: {text}")
            except (json.JSONDecodeError, jsonschema.ValidationError):
                continue
        assert reason == "eos_token", result
        jsonschema.validate(json.loads(text), schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        complete += 1
    assert complete >= 95, f"only {complete} of 100 completed within 600 tokens"
    assert server.metric("flashneox_kv_cache_blocks_used") == 0


def test_cut_off_outputs_say_length(server):
    r = generate(server, {"inputs": "ROMEO:", "parameters": {
        "max_new_tokens": 3, "details": True,
        "grammar": {"type": "json", "value": {"type": "object", "properties": {"a": {"type": "string"}},
                                              "required": ["a"]}}}})
    assert r.status_code == 200, r.text
    assert r.json()["details"]["finish_reason"] == "length"
    assert r.json()["generated_text"].startswith('{"a')


def test_regular_expressions_fullmatch(server):
    patterns = [r"(Thou|You) art (a|an) [a-z]{2,10}[.!]", r"[0-9]{3}-[0-9]{4}", r"\d{1,2}:\d{2} (am|pm)",
                r"(ROMEO|JULIET|NURSE): [A-Z][a-z ,']{5,40}\.", r"[^0-9\s]{4,8}"]
    for i, pattern in enumerate(patterns):
        for seed in range(3):
            r = generate(server, {"inputs": "ROMEO:", "parameters": {
                "do_sample": True, "temperature": 1.0, "seed": seed + 10 * i, "max_new_tokens": 100, "details": True,
                "grammar": {"type": "regex", "value": pattern}}})
            assert r.status_code == 200, r.text
            assert r.json()["details"]["finish_reason"] == "eos_token", r.json()
            assert re.fullmatch(pattern, r.json()["generated_text"]), (pattern, r.json()["generated_text"])


def test_streamed_tokens_make_the_structured_text(server):
    client = text_generation.Client(server.url)
    schema = {"type": "object", "properties": {"who": {"enum": ["Romeo", "Juliet"]},
                                               "lines": {"type": "array", "items": {"type": "string", "maxLength": 12},
                                                         "minItems": 1, "maxItems": 3}},
              "required": ["who", "lines"]}
    grammar = Grammar(type=GrammarType.Json, value=schema)
    text = ""
    final = None
    for response in client.generate_stream("ROMEO:", max_new_tokens=200, grammar=grammar, do_sample=True, seed=3):
        if not response.token.special:
            text += response.token.text
        if response.details:
            final = response
    assert final is not None and final.details.finish_reason.value == "eos_token"
    assert final.generated_text == text
    jsonschema.validate(json.loads(text), schema)
    whole = client.generate("ROMEO:", max_new_tokens=200, grammar=grammar, do_sample=True, seed=3)
    assert whole.generated_text == text


def test_lorax_response_format(server):
    client = lorax.Client(server.url)
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10},
                                               "age": {"type": "integer", "minimum": 13, "maximum": 99}},
              "required": ["name", "age"]}
    r = client.generate("JULIET:", max_new_tokens=100, response_format={"type": "json_object", "schema": schema})
    assert list(json.loads(r.generated_text)) == ["name", "age"]  # the schema's order
    jsonschema.validate(json.loads(r.generated_text), schema)
    # Without a schema (any object): LoRAX's own server takes it, its client insists on one.
    r = generate(server, {"inputs": "JULIET:", "parameters": {"response_format": {"type": "json_object"}}})
    assert isinstance(json.loads(r.json()["generated_text"]), dict), r.text


def test_openai_response_format(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 20},
                                               "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
              "required": ["answer", "confidence"], "additionalProperties": False}
    chat = client.chat.completions.create(
        model="neox-shakespeare", messages=[{"role": "user", "content": "Who art thou?"}], max_tokens=100,
        response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}})
    assert chat.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(chat.choices[0].message.content), schema)
    done = client.completions.create(model="neox-shakespeare", prompt="ROMEO:", max_tokens=80, temperature=1.0,
                                     seed=5, extra_body={"response_format": {"type": "json_object"}})
    assert isinstance(json.loads(done.choices[0].text), dict)
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="neox-shakespeare", messages=[{"role": "user", "content": "Speak."}], max_tokens=100, stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}) if c.choices)
    jsonschema.validate(json.loads(streamed), schema)


def test_constrained_and_free_requests_in_one_batch(server):
    free = {"inputs": "First Citizen:\nBefore we proceed", "parameters": {"max_new_tokens": 40, "ignore_eos_token": True}}
    alone = generate(server, free).json()["generated_text"]
    constrained = {"inputs": "ROMEO:", "parameters": {"max_new_tokens": 200, "do_sample": True, "seed": 1,
                                                      "response_format": {"type": "json_object"}}}
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(generate, server, constrained if i % 2 else free) for i in range(6)]
        results = [f.result() for f in futures]
    for i, r in enumerate(results):
        assert r.status_code == 200, r.text
        if i % 2 == 0:
            assert r.json()["generated_text"] == alone


def test_refusals_name_the_problem(server):
    def expect_422(body, says, route="/generate"):
        r = requests.post(server.url + route, json=body, timeout=60)
        assert r.status_code == 422, (body, r.status_code, r.text)
        error = r.json()["error"]
        message = error if isinstance(error, str) else error["message"]  # TGI's shape, OpenAI's
        assert says in message, message

    def grammar(g):
        return {"inputs": "ROMEO:", "parameters": {"grammar": g}}

    expect_422(grammar({"type": "json", "value": {"type": "object", "properties": {"a": {"not": {}}}}}),
               "JSON schema at #/properties/a: the keyword 'not' is not supported")
    expect_422(grammar({"type": "json", "value": {"type": "string", "format": "ipv4"}}), "format 'ipv4'")
    expect_422(grammar({"type": "json", "value": {"type": "integer", "minimum": 9, "maximum": 1}}), "no integer")
    expect_422(grammar({"type": "json", "value": "{not json"}), "is not a JSON schema")
    expect_422(grammar({"type": "regex", "value": "(a)\\1"}), "backreferences")
    expect_422(grammar({"type": "regex", "value": "(?<=a)b"}), "lookaround")
    expect_422(grammar({"type": "regex", "value": 5}), "must be a string")
    expect_422(grammar({"type": "yaml", "value": "x"}), '"json" or "regex"')
    expect_422(grammar({"type": "regex", "value": "a", "extra": 1}), "parameters.grammar.extra")
    expect_422({"inputs": "x", "parameters": {"grammar": {"type": "regex", "value": "a"},
                                               "response_format": {"type": "json_object"}}}, "at most one")
    expect_422({"inputs": "x", "parameters": {"response_format": {"type": "xml"}}}, '"json_schema"')
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    expect_422({**chat, "response_format": {"type": "json_schema"}}, "response_format.json_schema", "/v1/chat/completions")
    expect_422({**chat, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"a": {"type": "string", "uniqueItems": True}}}}}},
        "'uniqueItems'", "/v1/chat/completions")
    expect_422({"prompt": "x", "response_format": {"type": "json_object", "schema": {"allOf": [{}, {}]}}},
               "'allOf' with more than one", "/v1/completions")
    assert server.alive()


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                                   "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"]}}}
DUEL = {"type": "function", "function": {
    "name": "challenge", "parameters": {"type": "object", "properties": {"rival": {"type": "string", "maxLength": 12},
                                                                        "paces": {"type": "integer", "minimum": 1,
                                                                                  "maximum": 20}},
                                        "required": ["rival", "paces"]}}}
ASK = [{"role": "user", "content": "What is the weather in Verona?"}]


def parameters_of(name):
    return {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, DUEL)}[name]


def test_tool_calls_through_the_openai_client(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    named = client.chat.completions.create(model="neox-shakespeare", messages=ASK, max_tokens=120, tools=[WEATHER, DUEL],
                                           tool_choice={"type": "function", "function": {"name": "challenge"}})
    choice = named.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "challenge" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), parameters_of("challenge"))

    for seed in range(4):
        required = client.chat.completions.create(model="neox-shakespeare", messages=ASK, max_tokens=120, seed=seed,
                                                  temperature=1.0, tools=[WEATHER, DUEL], tool_choice="required")
        [call] = required.choices[0].message.tool_calls
        assert call.function.name in ("get_weather", "challenge")
        jsonschema.validate(json.loads(call.function.arguments), parameters_of(call.function.name))

    # "auto": a call, or a plain answer (TGI's no_tool); either way well formed.
    kinds = set()
    for seed in range(6):
        auto = client.chat.completions.create(model="neox-shakespeare", messages=ASK, max_tokens=150, seed=seed,
                                              temperature=1.0, tools=[WEATHER, DUEL])
        c = auto.choices[0]
        if c.message.tool_calls:
            assert c.finish_reason == "tool_calls"
            jsonschema.validate(json.loads(c.message.tool_calls[0].function.arguments),
                                parameters_of(c.message.tool_calls[0].function.name))
            kinds.add("call")
        else:
            assert c.finish_reason in ("stop", "length") and isinstance(c.message.content, str)
            kinds.add("answer")
    assert kinds

    # "none": plain text, as without tools.
    none = client.chat.completions.create(model="neox-shakespeare", messages=ASK, max_tokens=10, tools=[WEATHER],
                                          tool_choice="none", temperature=0)
    plain = client.chat.completions.create(model="neox-shakespeare", messages=ASK, max_tokens=10, temperature=0)
    assert none.choices[0].message.tool_calls is None
    assert none.choices[0].message.content != ""

    # A second turn with the call and the tool's answer is accepted.
    follow = client.chat.completions.create(model="neox-shakespeare", max_tokens=10, messages=ASK + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees"}])
    assert follow.choices[0].message.content is not None
    assert plain.choices[0].message.content


def test_streamed_tool_calls_rebuild_the_whole_call(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    kwargs = dict(model="neox-shakespeare", messages=ASK, max_tokens=120, seed=9, temperature=1.0,
                  tools=[WEATHER, DUEL], tool_choice="required")
    whole = client.chat.completions.create(**kwargs).choices[0].message.tool_calls[0]
    name, arguments, finish, ids = None, "", None, set()
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            assert tc.index == 0
            if tc.id:
                ids.add(tc.id)
            if tc.function and tc.function.name:
                name = tc.function.name
            if tc.function and tc.function.arguments:
                arguments += tc.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and len(ids) == 1
    assert name == whole.function.name
    assert json.loads(arguments) == json.loads(whole.function.arguments)


def test_tool_refusals(server):
    def expect_422(body, says):
        r = requests.post(server.url + "/v1/chat/completions", json={"messages": ASK, **body}, timeout=60)
        assert r.status_code == 422, r.text
        assert says in r.json()["error"]["message"] if isinstance(r.json()["error"], dict) else says in r.json()["error"]

    expect_422({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                "properties": {"a": {"not": {}}}}}}]}, "'not' is not supported")
    expect_422({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "not in `tools`")
    expect_422({"tools": [WEATHER, WEATHER]}, "appears twice")
    expect_422({"tools": []}, "non-empty list")
    expect_422({"tools": [{"type": "retrieval"}]}, "must be {")
    expect_422({"tool_choice": "required"}, "needs `tools`")
    expect_422({"tools": [WEATHER], "tool_choice": "sometimes"}, "`tool_choice` must be")
    expect_422({"tools": [WEATHER], "response_format": {"type": "json_object"}}, "at most one")


def test_stop_sequences_still_end_constrained_outputs(server):
    r = generate(server, {"inputs": "ROMEO:", "parameters": {
        "max_new_tokens": 50, "details": True, "stop": ["abab"], "grammar": {"type": "regex", "value": "(ab){3,}c"}}})
    assert r.status_code == 200, r.text
    assert r.json()["details"]["finish_reason"] == "stop_sequence", r.json()
    assert r.json()["generated_text"].startswith("abab"), r.json()
