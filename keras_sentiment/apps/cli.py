"""`keras-sentiment` command line: train, evaluate, export, predict, explain, score, serve.

A thin layer over the library: each command parses its flags, then calls the Python API
(`keras_sentiment.run.api`: `train`, `load(...).predict/explain/export`) or the run and app
modules it names. TensorFlow is imported only inside the commands (their imports are there, not at
the top, for this reason alone), so `--help` and a bad flag answer at once; it starts without Keras' unused
extras and with its start-up notes to stderr held back (`keras_sentiment.apps.tensorflow_start_up`; the notes
unless TF_CPP_MIN_LOG_LEVEL asks for logs).
"""

import argparse
import gc
import json
import os
import sys

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.explanation import DEFAULT_STEPS as DEFAULT_EXPLAIN_STEPS, format_explanation  # no TensorFlow
from keras_sentiment.run.settings import BY_NAME, add_train_arguments, describe_default, explicit_settings, resolve_settings, settings_of_run, train_context
from keras_sentiment.run.threads import set_scoring_threads
from keras_sentiment.apps.tensorflow_start_up import prepare_tensorflow_start_up

DATASETS = BY_NAME["dataset"].choices
DEFAULT_MODEL = resolve_settings({}, stamp="-").export_dir  # where `train` with no flags exports (make train)
# `score --runner`: this process, or Apache Beam ("beam" is its DirectRunner) on any of its runners.
BEAM_RUNNERS = ("DirectRunner", "PrismRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner")
SCORE_RUNNERS = ("local", "beam", *BEAM_RUNNERS)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):  # for the commands other than train
    """Shows a flag's default unless it is None or False: those flags say in words what happens."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _add_data_flags(parser):
    """--data-dir and --data-source for commands that read a dataset; the help comes from the settings table."""
    for name in ("data_dir", "data_source"):
        setting = BY_NAME[name]
        parser.add_argument(setting.flag, default=None, choices=setting.choices,
                            help=f"{setting.help} (default: a run directory's own, else {describe_default(setting)})")


def build_parser(argv=None):
    """The whole command line; `argv` lets `train --help` show the defaults of the --recipe/--arch/--dataset given."""
    parser = argparse.ArgumentParser(prog="keras-sentiment", description="Train, evaluate and use text classifiers: sentiment "
                                     "on IMDB and SST-2, or any labelled text of yours.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model, evaluate it and export a SavedModel",
                                description="Train on IMDB, SST-2 or your labelled files or folders (--train-file, "
                                "--train-dir), evaluate on valid and test, write a run directory "
                                "and export an end-to-end SavedModel (raw strings in). Every value in force is printed "
                                "at the start with where it came from (flag, recipe, arch, dataset or default).")
    add_train_arguments(train, train_context(argv or []))
    train.add_argument("--resume", metavar="RUN_DIR", default=None,
                       help="continue a run that was killed or interrupted, from its last backup (see --backup-every), "
                       "with the run's own settings from RUN_DIR/config.json; give no other flag")

    evaluate = commands.add_parser("evaluate", help="evaluate a run directory or SavedModel on a dataset split or "
                                   "your labelled file or folder",
                                   formatter_class=HelpFormatter)
    evaluate.add_argument("model", help="run directory, SavedModel directory, or export base (latest version)")
    evaluate.add_argument("--dataset", default=None, choices=DATASETS,
                          help="dataset to evaluate on (default: a run directory's own, else imdb)")
    evaluate.add_argument("--split", default="test", choices=("train", "valid", "test"),
                          help="split (for sst2, test is GLUE dev.tsv)")
    _add_data_flags(evaluate)
    evaluate.add_argument("--test-file", default=None, help="evaluate on your labelled file instead (CSV, TSV or JSONL, "
                          "as train --train-file); its labels must be the model's classes")
    evaluate.add_argument("--test-dir", default=None, help="evaluate on your labelled folder instead (one sub-folder per "
                          "class, as train --train-dir)")
    evaluate.add_argument("--text-column", default=None, help="the text's column of --test-file (default: the run's, else text)")
    evaluate.add_argument("--label-column", default=None,
                          help="the label's column of --test-file (default: the run's, else label)")
    evaluate.add_argument("--seed", type=int, default=None,
                          help="seed of the train/valid split (default: a run directory's own, else 1234)")
    evaluate.add_argument("--batch-size", type=_positive_int, default=256, help="texts per scoring batch")
    evaluate.add_argument("--output", default=None,
                          help="metrics JSON to write (default: <run dir>/metrics_<dataset>_<split>.json for a run "
                          "directory, none for a SavedModel)")
    evaluate.add_argument("--confusion-matrix", default=None, help="also draw the confusion matrix to this PNG")
    evaluate.add_argument("--reliability-plot", default=None,
                          help="also draw the reliability diagram (accuracy against confidence, the expected calibration "
                          "error) to this PNG")
    evaluate.add_argument("--json", action="store_true",
                          help="print the metrics as JSON (what --output writes), and no progress bar, instead of the "
                          "report for people")

    export = commands.add_parser("export", help="export a run directory as a versioned SavedModel",
                                 description="Write RUN_DIR's best model, with its text encoder, to "
                                 "<export-dir>/<version>/ for TF Serving. The version is written beside it and "
                                 "renamed into place in one step.",
                                 formatter_class=HelpFormatter)
    export.add_argument("run_dir", help="run directory written by train (config.json, best.keras, encoder)")
    export.add_argument("--export-dir", default=None,
                        help="SavedModel base path, e.g. saved_models/imdb_bigru (default: the run's own --export-dir)")
    export.add_argument("--version", type=_positive_int, default=None, help="version number (default: the next free one)")
    export.add_argument("--keep", type=_positive_int, default=None, help="afterwards keep only the K newest versions")
    export.add_argument("--explain-steps", type=_positive_int, default=DEFAULT_EXPLAIN_STEPS,
                        help="Integrated Gradients steps of the export's explain signature (more: closer attributions, "
                        "slower explanations)")
    tokenizer = export.add_mutually_exclusive_group()
    tokenizer.add_argument("--tokenizer-in-graph", dest="tokenizer_in_graph", action="store_true", default=True,
                           help="raw text in: the tokenizer is part of the SavedModel (the default; a bert_gru export "
                           "then needs a server that registers TensorFlow Text's ops)")
    tokenizer.add_argument("--no-tokenizer", dest="tokenizer_in_graph", action="store_false",
                           help="bert_gru: token ids in (int32 token_ids), core TensorFlow ops only, for TF Serving "
                           "builds without TensorFlow Text; clients tokenize with keras_sentiment.apps.client.BertTokenIds "
                           "from the tokenizer saved in VERSION/assets.extra/tokenizer/")

    predict = commands.add_parser("predict", help="print each text's label and probability",
                                  description="Score texts given as arguments, or one per line on stdin: per text "
                                  "the probability, the label and the text (two classes: P(the second class), "
                                  "P(positive) for IMDB and SST-2 models; more: the predicted class's).",
                                  formatter_class=HelpFormatter)
    predict.add_argument("texts", nargs="*", help="texts to score; none: read one text per line from stdin")
    predict.add_argument("--model", default=DEFAULT_MODEL, help="run directory, SavedModel, or export base (latest version)")
    predict.add_argument("--batch-size", type=_positive_int, default=256, help="texts per scoring batch")
    predict.add_argument("--json", action="store_true", help="print one JSON object per line instead of a table")
    predict.add_argument("--explain", action="store_true",
                         help="also show the words that drove each prediction most (Integrated Gradients, as the "
                         "explain command; slower: one batch of --steps model runs per text)")
    predict.add_argument("--top", type=_positive_int, default=5, help="with --explain: how many words to show")
    predict.add_argument("--steps", type=_positive_int, default=DEFAULT_EXPLAIN_STEPS,
                         help="with --explain on a run directory: Integrated Gradients steps (an export uses its own)")

    explain = commands.add_parser(
        "explain", help="show how much each word pushed a prediction up or down",
        description="Integrated Gradients: each token's attribution is its share of the logit's distance from a "
        "baseline with zero word embeddings (positive: towards the explained class, by default positive sentiment or "
        "the predicted class; see --class); the attributions of a text sum to that distance. Colours in a terminal (green positive, red negative), plain columns when piped. A run "
        "directory is explained in this process with --steps; an export runs its own explain signature.",
        formatter_class=HelpFormatter)
    explain.add_argument("texts", nargs="*", help="texts to explain; none: read one text per line from stdin")
    explain.add_argument("--model", default=DEFAULT_MODEL, help="run directory, SavedModel, or export base (latest version)")
    explain.add_argument("--steps", type=_positive_int, default=DEFAULT_EXPLAIN_STEPS,
                         help="Integrated Gradients steps, for a run directory (an export uses the steps it was "
                         "exported with, export --explain-steps)")
    explain.add_argument("--word-pieces", action="store_true",
                         help="bert_gru: show the word pieces ([CLS], charm, ##ing, [SEP]) instead of whole words")
    explain.add_argument("--json", action="store_true",
                         help="print one JSON object per text: text, probability (of the explained class), label and "
                         "class (predicted), explained (the class explained), logit, baseline_logit, steps, tokens, "
                         "attributions")
    explain.add_argument("--batch-size", type=_positive_int, default=8, help="texts explained per model call")
    explain.add_argument("--class", dest="class_name", metavar="NAME",
                         help="the class to explain, one of the model's (default: two classes, the second, e.g. "
                         "positive; more, each text's predicted class)")
    score = commands.add_parser(
        "score", help="score a CSV, TSV, JSONL or text file into JSONL or CSV",
        description="Stream INPUT through a model in batches (bounded memory) and write id, probability, label per "
        "row. The output is written as OUTPUT.partial and renamed when complete; --resume continues an interrupted "
        "run. A row's id is --id-column/--id-field, else the line number where it starts. With --runner beam (or "
        "a Beam runner's name) the same scoring runs as an Apache Beam pipeline over many files: any further "
        "flags are Beam pipeline options (e.g. --direct_num_workers 2, or Dataflow's --project, --region, "
        "--temp_location; see docs/SCALE.md).",
        formatter_class=HelpFormatter, allow_abbrev=False)  # a Beam option must never pass for an abbreviation of ours
    score.add_argument("--model", default=DEFAULT_MODEL,
                       help="SavedModel base (its latest version), a SavedModel version dir, or a run directory")
    score.add_argument("--input", required=True, nargs="+",
                       help="input file: .csv, .tsv, .jsonl (or .ndjson) or .txt (one review per line); with a Beam "
                       "runner, any number of files and glob patterns (quoted), local or e.g. gs://")
    score.add_argument("--output", required=True,
                       help="output file: .csv for CSV, anything else JSONL; with a Beam runner, the prefix of sharded "
                       "JSONL (scores.jsonl -> scores-00000-of-00004.jsonl, bad rows in scores.bad-rows-*.jsonl)")
    score.add_argument("--runner", default="local", choices=SCORE_RUNNERS,
                       help="local: this process (resumable, bounded memory); beam: an Apache Beam pipeline on its "
                       "DirectRunner (needs the beam extra: pip install 'keras-sentiment[beam]'); or a Beam runner by "
                       "name, with its pipeline options after the other flags")
    score.add_argument("--num-shards", type=_positive_int, default=None,
                       help="Beam runners: output shards (default: the runner decides)")
    score.add_argument("--input-format", choices=("csv", "tsv", "jsonl", "txt"), default=None,
                       help="input format (default: from the input's extension)")
    score.add_argument("--text-column", default="text", help="CSV/TSV: header of the text column")
    score.add_argument("--id-column", default=None, help="CSV/TSV: header of the id column (default: line number)")
    score.add_argument("--text-field", default="text", help="JSONL: key of the text")
    score.add_argument("--id-field", default=None, help="JSONL: key of the id (default: line number)")
    score.add_argument("--batch-size", type=_positive_int, default=256, help="texts per model call")
    score.add_argument("--window-mb", type=_positive_int, default=64,
                       help="most megabytes of text read ahead at once (with 8 batches of rows): bounds memory "
                       "when rows are long")
    score.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                       help="a bad row: fail stops with file:line and the reason; skip leaves it out, counts it and "
                       "lists it in OUTPUT.skipped.jsonl")
    score.add_argument("--resume", action="store_true", help="continue an interrupted run from OUTPUT.partial")
    score.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    score.add_argument("--quiet", action="store_true", help="no progress bar")

    serve = commands.add_parser(
        "serve", help="serve an export base over TF Serving's REST API (predict, explain, status, metadata) with a demo page",
        description="A local endpoint speaking the subset of TF Serving's REST API that clients use: "
        "GET /v1/models/NAME, GET /v1/models/NAME/metadata, POST /v1/models/NAME[/versions/V]:predict (add "
        "\"signature_name\": \"explain\" for word attributions, or POST ...:explain). GET / is a demo page: type a "
        "review and see its words highlighted, or score many lines into a table. Serves the latest version under "
        "--model-base and switches to a newer (or, after a removal, older) one without a restart.",
        formatter_class=HelpFormatter)
    serve.add_argument("--model-base", required=True, help="export base holding integer version folders, e.g. saved_models/imdb_bigru")
    serve.add_argument("--model-name", default=None, help="model name in the URLs (default: the base folder's name)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes the server to the network")
    serve.add_argument("--port", type=int, default=8501, help="port (TF Serving's REST port is 8501)")
    serve.add_argument("--max-batch", type=_positive_int, default=1024, help="most texts per predict request")
    serve.add_argument("--max-explain-batch", type=_positive_int, default=32,
                       help="most texts per explain request (each costs dozens of model runs)")
    serve.add_argument("--max-request-bytes", type=_positive_int, default=8 * 1024 * 1024, help="largest request body")
    serve.add_argument("--poll-seconds", type=float, default=10.0, help="how often to look for new versions")
    serve.add_argument("--batching", action=argparse.BooleanOptionalAction, default=True,
                       help="merge concurrent predict requests into one model call (like TF Serving's "
                       "--enable_batching); --no-batching runs one call per request")
    serve.add_argument("--max-server-batch", type=_positive_int, default=256, help="most texts per merged model call")
    serve.add_argument("--batch-wait-ms", type=float, default=2.0,
                       help="once a batch has a request, how long it waits for more before running")
    return parser


def run_train(args):
    # Settings are decided before importing TensorFlow: bad flags fail at once.
    explicit = explicit_settings(args)
    if args.resume:
        if explicit:
            flags = " ".join(BY_NAME[name].flag for name in explicit)
            raise KerasSentimentError(f"--resume continues {args.resume} with its own settings; drop {flags}")
        settings_of_run(args.resume)
    else:
        resolve_settings(explicit)
    from keras_sentiment.run import api
    from keras_sentiment.run.evaluation import class_table, optional_figures

    run = api.train(resume=args.resume) if args.resume else api.train(**explicit)
    test = run.metrics["test"]
    f1 = f"F1 {test['f1']:.4f}" if "f1" in test else f"macro-F1 {test['macro_f1']:.4f}"
    print("  ".join([f"\nTest accuracy {test['accuracy']:.4f}", f1, f"loss {test['loss']:.4f}", *optional_figures(test)]))
    print("\n".join(class_table(test, list(test["per_class"]))))  # per_class keeps the classes' order
    print(f"\nRun directory: {run.run_dir}\nSavedModel:    {run.export_path}")
    return 0


def run_evaluate(args):
    from pathlib import Path

    from keras_sentiment.run.evaluation import (classification_metrics, metrics_report, plot_confusion_matrix,
                                                plot_reliability, score_dataset)
    from keras_sentiment.run.loading import load_scorer
    from keras_sentiment.run.rundir import is_run_dir, read_class_names, read_run_config, read_threshold

    # A run directory knows its dataset, split seed and data; a SavedModel does not.
    run = read_run_config(args.model) if is_run_dir(args.model) else {}
    class_names = read_class_names(args.model)
    scorer = load_scorer(args.model)
    name, split, examples, size = evaluation_data(args, run, class_names)
    labels, logits, seconds = score_dataset(scorer, examples, size, args.batch_size, verbose=not args.json)
    metrics = {split: classification_metrics(labels, logits, seconds, class_names, read_threshold(args.model))}
    title = args.test_file or args.test_dir or f"{name} {split}"  # your labelled data by its path
    print(json.dumps(metrics, indent=2) if args.json else "\n".join(metrics_report(metrics[split], class_names, title)))
    output = args.output
    if output is None and run:
        output = Path(args.model) / f"metrics_{name}_{split}.json"
    if output:
        Path(output).write_text(json.dumps(metrics, indent=2))
        print(f"Metrics written to {output}")
    if args.confusion_matrix:
        plot_confusion_matrix(metrics[split]["confusion_matrix"], args.confusion_matrix, f"{name} {split}", class_names)
    if args.reliability_plot and metrics[split]["num_examples"]:
        plot_reliability(metrics[split], args.reliability_plot, f"{name} {split}")
    return 0


def evaluation_data(args, run, class_names):
    """`(name, split, dataset of (text, class id), size)`: your `--test-file`/`--test-dir`, else the split of
    the run's own data or of `--dataset`."""
    from pathlib import Path

    from keras_sentiment.run.settings import OWN, ResolvedSettings, dataset_default, own_data_source
    from keras_sentiment.run.sources import OwnDataSource, labelled_dataset, load_dataset, load_own_data

    text_column = args.text_column or run.get("text_column", BY_NAME["text_column"].default)
    label_column = args.label_column or run.get("label_column", BY_NAME["label_column"].default)
    if args.test_file or args.test_dir:
        kind, path = ("file", args.test_file) if args.test_file else ("dir", args.test_dir)
        examples, size = labelled_dataset((kind, path), class_names, text_column, label_column)
        return Path(path).stem, "test", examples, size
    dataset = args.dataset or run.get("dataset", BY_NAME["dataset"].default)
    seed = args.seed if args.seed is not None else run.get("seed", BY_NAME["seed"].default)
    valid_fraction = run.get("valid_fraction", dataset_default(dataset, "valid_fraction"))  # a run of before 2026-12-04: none
    if dataset == OWN:
        settings = ResolvedSettings.from_json(run)
        splits = load_own_data(OwnDataSource(*own_data_source(settings), text_column, label_column,
                                             settings.class_names), seed, valid_fraction)
    else:
        data_dir = args.data_dir or run.get("data_dir")
        data_source = args.data_source or run.get("data_source", BY_NAME["data_source"].default)
        splits = load_dataset(dataset, data_dir, data_source, seed, valid_fraction)
    return dataset, args.split, getattr(splits, args.split), splits.sizes[args.split]


def run_export(args):
    from keras_sentiment.run import api
    from keras_sentiment.run.export import ops_outside_core_tensorflow, prune_versions

    path = api.load(args.run_dir).export(args.export_dir, args.version, tokenizer_in_graph=args.tokenizer_in_graph,
                                         explain_steps=args.explain_steps)
    print(f"SavedModel: {path}" + ("  (input: token_ids; tokenizer for clients in assets.extra/tokenizer/)"
                                   if not args.tokenizer_in_graph else ""))
    custom = ops_outside_core_tensorflow(path)
    print(f"Ops beyond core TensorFlow: {', '.join(custom)} (the server must register them: docs/DEPLOY.md)" if custom
          else "Ops beyond core TensorFlow: none (any TF Serving build loads it)")
    if args.keep:
        removed = prune_versions(path.parent, args.keep)
        if removed:
            print(f"Removed older versions: {', '.join(map(str, removed))}")
    return 0


def run_predict(args):
    from keras_sentiment.run import api

    texts = args.texts or [line.rstrip("\r\n") for line in sys.stdin]
    model = api.load(args.model)
    if args.explain:
        return print_predictions_with_top_words(args, model, texts)
    names = model.class_names
    for text, prediction in zip(texts, model.predict(texts, args.batch_size)):
        label = prediction["label"]
        # Two classes: P(the second), as before class names; more: the predicted class's probability.
        probability = prediction["scores"][names[1] if len(names) == 2 else label]
        if args.json:
            print(json.dumps({"text": text, "probability": probability, "label": names.index(label), "class": label,
                              "scores": prediction["scores"]}))
        else:
            print(f"{probability:.4f}\t{label}\t{text}")
    return 0


def print_predictions_with_top_words(args, model, texts):
    for explanation in model.explanations(texts, args.steps):
        top = explanation.top(args.top)
        if args.json:
            print(json.dumps({"text": explanation.text, "probability": explanation.probability, "label": explanation.label,
                              "class": explanation.label_name,
                              "top_tokens": [{"token": t.token, "attribution": t.attribution} for t in top]}))
        else:
            words = " ".join(f"{t.token}({t.attribution:+.2f})" for t in top)
            print(f"{explanation.probability:.4f}\t{explanation.label_name}\t{explanation.text}\t{words}")
    return 0


def run_explain(args):
    from keras_sentiment.run import api

    texts = args.texts or [line.rstrip("\r\n") for line in sys.stdin]
    model = api.load(args.model)
    colour = sys.stdout.isatty() and not args.json and "NO_COLOR" not in os.environ
    for explanation in model.explanations(texts, args.steps, args.batch_size, merge_pieces=not args.word_pieces,
                                          class_name=args.class_name):
        print(json.dumps(explanation.to_dict()) if args.json else format_explanation(explanation, colour), flush=True)
    return 0


def run_score(args):
    if args.runner != "local":
        return run_score_on_beam(args)
    from keras_sentiment.run.readers import INPUT_FORMATS, OUTPUT_FORMATS, ScoreOptions, detect_format
    from keras_sentiment.apps.scoring import score_file

    if len(args.input) > 1:
        raise KerasSentimentError(f"--input: local scoring reads one file, got {len(args.input)}; "
                                  "score many files or globs with --runner beam")
    args.input = args.input[0]
    options = ScoreOptions(
        input_format=detect_format(args.input, INPUT_FORMATS, "input", args.input_format),
        output_format=detect_format(args.output, OUTPUT_FORMATS, "output"),
        text_column=args.text_column, id_column=args.id_column, text_field=args.text_field, id_field=args.id_field)
    report = score_file(args.model, args.input, args.output, options, batch_size=args.batch_size,
                        on_error=args.on_error, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                        window_bytes=args.window_mb * 2**20)
    resumed = f" ({report.resumed_rows:,} from the interrupted run)" if report.resumed_rows else ""
    print(f"Scored {report.rows:,} rows{resumed} into {report.output} "
          f"({report.rows_per_second:,.0f} rows/s)", file=sys.stderr)
    if report.skipped:
        where = ", ".join(f"{args.input}:{e['line']} ({e['reason']})" for e in report.skipped_examples)
        more = f" and {report.skipped - len(report.skipped_examples)} more" if report.skipped > len(report.skipped_examples) else ""
        print(f"Skipped {report.skipped:,} bad rows, listed in {report.skipped_file}: {where}{more}", file=sys.stderr)
    return 0


def run_score_on_beam(args):
    try:
        from keras_sentiment.apps.beam_score import score_on_beam
    except ImportError as error:
        raise KerasSentimentError(f"--runner {args.runner} needs Apache Beam ({error}): pip install 'keras-sentiment[beam]'") from None
    from keras_sentiment.run.readers import ScoreOptions

    if args.resume or args.on_error != "fail" or args.output.endswith(".csv"):
        raise KerasSentimentError(f"--runner {args.runner}: output is sharded JSONL, bad rows always go to the dead-letter "
                                  "output, and a failed pipeline writes nothing, so there is no --resume, --on-error or "
                                  ".csv output; rerun a failed pipeline")
    runner = "DirectRunner" if args.runner == "beam" else args.runner
    options = ScoreOptions(input_format=args.input_format, output_format="jsonl", text_column=args.text_column,
                           id_column=args.id_column, text_field=args.text_field, id_field=args.id_field)
    print(f"Scoring {', '.join(args.input)} on Apache Beam ({runner}) into {args.output}", file=sys.stderr)
    report = score_on_beam(args.model, args.input, args.output, options, runner=runner, pipeline_args=args.pipeline_args,
                           batch_size=args.batch_size, num_shards=args.num_shards or 0, overwrite=args.overwrite)
    rate = report["rows"] / report["seconds"] if report["seconds"] else 0.0
    print(f"Scored {report['rows']:,} rows from {report['files']:,} files into {args.output} shards "
          f"({rate:,.0f} rows/s, whole pipeline)", file=sys.stderr)
    if report["bad_rows"]:
        print(f"{report['bad_rows']:,} bad rows (file:line and reason) are in the .bad-rows shards", file=sys.stderr)
    return 0


def run_serve(args):
    from keras_sentiment.apps.serving import serve

    serve(args.model_base, args.model_name, host=args.host, port=args.port, max_batch=args.max_batch,
          max_request_bytes=args.max_request_bytes, poll_seconds=args.poll_seconds, batching=args.batching,
          max_server_batch=args.max_server_batch, batch_wait_ms=args.batch_wait_ms, max_explain_batch=args.max_explain_batch)
    return 0


SCORING_COMMANDS = ("evaluate", "predict", "score", "serve")  # TensorFlow's threads sized for their model (run.threads)
COMMANDS = {"train": run_train, "evaluate": run_evaluate, "export": run_export, "predict": run_predict,
            "explain": run_explain, "score": run_score, "serve": run_serve}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not (args.command == "score" and args.runner != "local"):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.pipeline_args = unknown  # score on a Beam runner: its pipeline options
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow C++ start-up chatter (CUDA probing, oneDNN notes); Python errors still raise
    try:
        prepare_tensorflow_start_up()
        if args.command in SCORING_COMMANDS:
            set_scoring_threads(getattr(args, "model", None) or getattr(args, "model_base", None))
        return COMMANDS[args.command](args)
    except KerasSentimentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def console_main(argv=None):
    """The `keras-sentiment` program (also `python -m keras_sentiment.apps.cli` and scripts/): `main(argv)`, then
    every object frozen out of the garbage collector, so that the interpreter's last collection at exit does not walk
    all that TensorFlow and Keras made (~1 s of every command; each object is still released by its count)."""
    code = main(argv)
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(console_main())
