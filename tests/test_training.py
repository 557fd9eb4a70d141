"""LoRA training: the loss goes down, the prompt is masked, the adapter reloads with peft."""

import pytest

torch = pytest.importorskip("torch")


def test_encode_masks_prompt():
    from star_core.training import encode

    class Tok:
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [ord(c) for c in text]}

    ids, labels = encode(Tok(), "ab", "cd", mask_prompt=True, max_len=100)
    assert ids == [97, 98, 99, 100, 10, 10]
    assert labels == [-100, -100, 99, 100, 10, 10]
    ids, labels = encode(Tok(), "ab", "cd", mask_prompt=False, max_len=100)
    assert labels == ids
    ids, labels = encode(Tok(), "abcdef", "xy", mask_prompt=True, max_len=4)
    assert ids == [120, 121, 10, 10] and labels == ids  # cut from the left keeps the completion


def test_lora_training_lowers_loss_and_saves_peft_adapter(tiny_model_dir, tmp_path):
    from peft import PeftModel

    from star_core.models import fresh_lora, load_base, lora_config, strip_lora
    from star_core.training import TrainArgs, train

    loaded = load_base(str(tiny_model_dir), quantization="none", device="cpu")
    base_w = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    model = fresh_lora(loaded.model, lora_config(8, 16, 0.0, ["all-linear"]), seed=0)
    examples = [("Q: What is 2 + 3?\nA:", " 2 + 3 = 5. The answer is 5.")] * 4
    log = train(
        model,
        loaded.tokenizer,
        examples,
        TrainArgs(
            steps=30,
            learning_rate=3e-2,
            warmup_steps=2,
            batch_size=4,
            grad_accum=1,
            max_grad_norm=1.0,
            mask_prompt=True,
            max_seq_len=128,
            seed=0,
        ),
    )
    assert len(log) == 30
    assert log[-1][1] < 0.5 * log[0][1]
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    base = strip_lora(model)
    for k, v in base.state_dict().items():  # unloading restores the untouched base weights
        assert torch.equal(v, base_w[k]), k
    again = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
    enc = loaded.tokenizer("Q: What is 2 + 3?\nA: 2 + 3", return_tensors="pt")
    with torch.no_grad():
        assert again(**enc).logits.shape[-1] == len(loaded.tokenizer)


def test_4bit_quantized_path_on_cpu(tiny_model_dir):
    pytest.importorskip("bitsandbytes")
    from star_core.models import fresh_lora, load_base, lora_config
    from star_core.training import TrainArgs, train

    loaded = load_base(str(tiny_model_dir), quantization="4bit", device="cpu")
    assert loaded.quantized and "4-bit" in loaded.description
    model = fresh_lora(loaded.model, lora_config(8, 16, 0.0, ["q_proj", "v_proj"]), seed=0)
    log = train(
        model,
        loaded.tokenizer,
        [("Q: 1 + 1?\nA:", " 2")] * 2,
        TrainArgs(
            steps=2,
            learning_rate=1e-3,
            warmup_steps=1,
            batch_size=2,
            grad_accum=2,
            max_grad_norm=1.0,
            mask_prompt=True,
            max_seq_len=64,
            seed=0,
        ),
    )
    assert len(log) == 2 and all(loss == loss for _, loss, _, _ in log)  # finite losses


def test_merge_for_inference_matches_unmerged_and_strips_back(tiny_model_dir):
    from star_core.models import fresh_lora, load_base, lora_config, merge_for_inference, strip_lora

    loaded = load_base(str(tiny_model_dir), quantization="none", device="cpu")
    base_w = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    model = fresh_lora(loaded.model, lora_config(8, 16, 0.0, ["all-linear"]), seed=0)
    for n, p in model.named_parameters():  # a non-zero adapter
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    enc = loaded.tokenizer("Q: What is 2 + 3?\nA:", return_tensors="pt")
    with torch.no_grad():
        before = model(**enc).logits
        merge_for_inference(model, quantized=False)
        after = model(**enc).logits
    assert torch.allclose(before, after, atol=1e-4)
    base = strip_lora(model)
    for k, v in base.state_dict().items():
        assert torch.allclose(v, base_w[k], atol=1e-6), k
