"""A tiny random Llama and a byte-level BPE tokenizer, built offline in about a second.

For tests and benchmarks (decoder host overhead), where compute must be negligible.

Widths are multiples of 64 so bitsandbytes 4-bit also works on it.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "Q: What is 47 + 38?\nA: 47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85. The answer is 85.\n\n",
    "Q: Where would you put a plate?\nAnswer Choices:\n(a) cupboard\n(b) sky\n(c) river\n(d) shoe\n(e) moon\n"
    "A: Plates are stored in a cupboard. So the answer is cupboard (a).\n\n",
    "Q: Tom has 3 apples and buys 4 more. How many apples does he have?\nA: He has 3 + 4 = 7 apples.\n#### 7\n\n",
    "Hint: the answer is 0123456789 (CORRECT) <scratch> </scratch> Input: Target: C: 0 C: 1 carry write",
]


def build_tiny_model(folder: Path, layers: int = 2, hidden: int = 64) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        padding_side="left",
    )
    fast.save_pretrained(folder)
    cfg = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=0.1,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder
