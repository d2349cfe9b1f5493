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
