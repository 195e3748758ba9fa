"""Every file a stage reads is checked on read, in one place per format: a bad file is one
`UserError` line naming the file, what is wrong and which stage to rerun, never a traceback
and never a silently wrong result.

* `text`: a small typed checker for the CSV tables the stages write (header, field count, each
  field's text form as the writer prints it, ranges, the rows expected);
* `implied`: what params.yaml implies about those files (K values, criteria, rows, P);
* `tables`: the declared CSV formats (sweep, ranking, fine-tuning, training curve, the study's
  band and fine-tuning tables) and the checks across their rows;
* the JSON documents, one module each, each read through a pydantic model on `reader`'s `Document`
  (strict JSON types, no unknown key, finite numbers, each field's "allowed" text), with the cross-field
  checks as model validators: `summary` (a replicate's summary.json against its sweep), `study_metrics`
  (the study's metrics.json), `efficiency` (efficiency.json, its latency prediction included) and `info`
  (a prepared folder's info.json). The first problem is one line naming the file, the dotted key, the
  value and what is allowed, as params.yaml's (`prunelab.messages`), and the stage to rerun;
* `arrays`: the .npz arrays (prepared splits, activation statistics).

The readers (`prunelab.study.replicates`, `prunelab.pruning.ranking`, `prunelab.data.prepared`,
`prunelab.pruning.activations`, `prunelab.runtime.read_json`/`read_table`) call these, so every
stage and every library caller gets them.

Validation only, like `prunelab.params` and `prunelab.errors`: every public function here returns
None and only raises, so it can refuse a run but never change an output; that is why no stage
lists `prunelab/checks` as a DVC dep (tests/imports.py, VALIDATION_ONLY), and a stricter check
reruns nothing.

Why not pandera: importing it costs about 0.2–0.26 s on top of pandas on this 2-core machine
(`python -X importtime`: pandas 0.42 s, pandera.pandas +0.26 s), a fifth of the 1.3 s in which
`stages.headline` starts, for stages that import no torch; it is one more pinned runtime
dependency; its errors are multi-line reports that would need rewriting into one line; and the
checks that catch most damage here are not per column at all (the rows params imply, a summary
against its sweep, the writer's number format). The typed checker in `text` is about a hundred lines.
"""
