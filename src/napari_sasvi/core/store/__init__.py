"""The output store: SASVi's labels and the overseer's in a resumable, self-describing zarr group
(:mod:`.sasvi_store`), the session that writes it (:mod:`.session`: lock, input ledger, frame
sinks, edit log), and what it remembers of its input (:mod:`.fingerprint`)."""
