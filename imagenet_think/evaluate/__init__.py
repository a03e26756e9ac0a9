"""Score vision-language models against ImageNet-Think, as in the paper's evaluation.

Modules, in the order data flows through them:

``subset``
    The deterministic evaluation subset: ``size`` validation ids, ordered by a second hash.
``predictions``
    Model outputs read from JSONL/Parquet (or generated through the regenerate engines),
    checked against the corpus and split into think and answer.
``metrics``
    The seven similarity metrics (BERTScore F1, Sentence-BERT cosine, ROUGE-1 F, ROUGE-L F,
    Jaccard, overlap coefficient, TF-IDF cosine).
``scoring``
    Both parts against teacher 1, teacher 2 and the better of the two, in resumable chunks.
``label_accuracy``
    Whether the model's answers (and, as reference, the teachers') name the image's WordNet class.
``report``
    Means with bootstrap confidence intervals as JSON, Markdown and a bar chart.

``python -m imagenet_think.evaluate --help`` lists the command-line options.

>>> from imagenet_think.evaluate import metrics
>>> metrics.METRIC_NAMES[0]
'bertscore_f1'
"""
