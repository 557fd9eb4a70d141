"""lora_targets=auto: the model type's known LoRA targets (else all-linear), so that GPT-2 and Qwen2 models
train out of the box; explicit names that match no module fail before any work. Tiny models built from
configs on the CPU, one training step each."""

import pytest

from star_core.config import StarConfig
from star_core.training import LORA_TARGETS, TrainArgs, resolve_lora_targets, train

LLAMA_NAMES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _gpt2(tok):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_embd=64,
            n_layer=2,
            n_head=2,
            n_positions=256,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    )


def _qwen2(tok):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    return Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=256,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            tie_word_embeddings=True,
        )
    )


def test_auto_is_the_default():
    assert StarConfig().lora_targets == ["auto"]


@pytest.mark.parametrize("build, want", [(_gpt2, ["c_attn", "c_proj", "c_fc"]), (_qwen2, LLAMA_NAMES)])
def test_auto_targets_train_one_step(build, want, tok):
    from star_core.models import fresh_lora, lora_config

    model = build(tok)
    targets = resolve_lora_targets(["auto"], model)
    assert targets == want == LORA_TARGETS[model.config.model_type]
    peft = fresh_lora(model, lora_config(4, 8, 0.0, targets), seed=0)
    names = [n for n, _ in peft.named_parameters() if "lora_A" in n]
    assert all(any(f".{t}.lora_A" in n for n in names) for t in want), names
    before = {n: p.detach().clone() for n, p in peft.named_parameters() if "lora_B" in n}
    losses = train(
        peft,
        tok,
        [("Q: What is 2 + 3?\nA:", " 2 + 3 = 5. The answer is 5.")],
        TrainArgs(
            steps=1,
            learning_rate=1e-2,
            warmup_steps=1,
            batch_size=1,
            grad_accum=1,
            max_grad_norm=1.0,
            mask_prompt=True,
            max_seq_len=64,
            seed=0,
        ),
    )
    assert len(losses) == 1 and losses[0][1] > 0
    assert any(not p.detach().equal(before[n]) for n, p in peft.named_parameters() if n in before)


def test_unknown_model_type_gets_all_linear(tok):
    model = _gpt2(tok)
    model.config.model_type = "mystery"
    assert resolve_lora_targets(["auto"], model) == ["all-linear"]
    assert resolve_lora_targets(["all-linear"], model) == ["all-linear"]


def test_llama_names_on_gpt2_fail_before_training(tok):
    with pytest.raises(ValueError, match=r"match no module of this gpt2 model .*c_attn.*lora_targets=auto"):
        resolve_lora_targets(LLAMA_NAMES, _gpt2(tok))
    assert resolve_lora_targets(["c_attn"], _gpt2(tok)) == ["c_attn"]
