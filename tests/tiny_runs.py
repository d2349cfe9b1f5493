"""The tiny-run settings every end-to-end test shares: per model, the ``--set`` overrides that make a run of
``run_crslab.py`` on the tiny dataset take seconds (one or two epochs, batches of 16, dimensions of 16)."""

SHORT = {
    "KGSF": ["pretrain.epoch=1", "rec.epoch=1", "conv.epoch=1", "pretrain.batch_size=16", "rec.batch_size=16",
             "conv.batch_size=16", "token_emb_dim=16", "kg_emb_dim=16", "ffn_size=16", "n_positions=300",
             "embedding=null"],
    "KBRD": ["rec.epoch=1", "conv.epoch=1", "rec.batch_size=16", "conv.batch_size=16", "token_emb_dim=16",
             "kg_emb_dim=16", "ffn_size=16", "user_proj_dim=16", "n_positions=300", "embedding=null"],
    "C2CRS": ["coarse.epoch=1", "fine.epoch=1", "rec.epoch=2", "conv.epoch=1", "coarse.batch_size=16",
              "fine.batch_size=16", "rec.batch_size=16", "conv.batch_size=16", "token_dim=16", "kg_dim=16",
              "ffn_size=16", "n_positions=300"],
}


def saved_chats(models, root, workdir, name: str, topk: int = 5):
    """For each of ``models``: a tiny system trained on the data root ``root`` and saved (``-ss``, checkpoint_dir
    ``<name>_<model>``), then restored as ``-rs -i`` restores it, in a :class:`~crslab_c2crs.interactive.chat.Chat`;
    run from ``workdir``. Returns {model: chat}."""
    from pathlib import Path

    import pytest

    from crslab_c2crs.cli import main
    from crslab_c2crs.interactive import web

    configs = Path(__file__).resolve().parent.parent / "config"
    chats = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        for model in models:
            spec = web.ModelSpec(str(configs / model.lower() / "redial.yaml"),
                                 ["num_threads=1", f"checkpoint_dir={name}_{model}", *SHORT[model]])
            argv = ["-c", spec.config, "-g", "-1", "--data-root", str(root), "--seed", "1", "-ss"]
            assert main(argv + [arg for override in spec.overrides for arg in ("--set", override)]) == 0
            chats[model] = web.load_chat(spec, str(root), "-1", topk)
    return chats
