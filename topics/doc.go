// Package topics finds the topics of an SFT dataset and acts on them:
// embeddings, clustering, labels, semantic deduplication, diversity
// balancing and the data of a visual report. It is plain Go (gonum for
// the linear algebra) and knows nothing of Beam; package transforms is
// meant to wrap it.
//
// # Flow
//
// Fit a Model on a bounded sample (Fit: at most Config.MaxSamples
// samples, chosen by seeded id hash, so the input order never matters),
// serialise it (Save, Load), then assign every sample with it, one at a
// time: Model.AssignSample (built-in embedder) or Model.AssignVector
// (after embedding with the model's embedder) is a pure function of the
// model and the sample. Per-topic TopicStats and a few Points gathered
// over the assigned samples make a Report. SemDeDup works inside one
// topic; a balancing Plan decides each sample from its id and topic.
//
// # Shapes and units
//
//   - An embedding is a []float32 of the embedder's Dim(); the package
//     normalises it to unit L2 length before any use, and every
//     similarity is the cosine similarity in [-1, 1]. A distance is the
//     cosine distance 1 − cos, in [0, 2] (0: same direction).
//   - Row-major blocks: Model.Centroids is K×Dim, TFIDF.Basis is
//     len(Features)×Dim, Model.Proj is 2×Dim.
//   - Topic ids are 0..K−1 (int32 in Assignment, like datasets.Sample's
//     TopicID).
//   - Vectors in JSON are base64 of little-endian float32 (Vec32).
//
// # Embedders
//
// The built-in TFIDF embedder needs no model: sublinear tf-idf
// ((1 + ln tf)·idf, idf = ln((1+n)/(1+df)) + 1) over word unigrams and
// bigrams and the character 3- to 5-grams of words, hashed into 2^18
// buckets (the MaxFeatures most frequent kept), L2-normalised, centred
// on the sample mean and reduced by a randomized truncated SVD (Halko,
// Martinsson and Tropp: Gaussian test matrix, power iterations, QR, the
// SVD of the small core) of the rows of a seeded subset of at most 4000
// texts to Dim dimensions (96). Its idf, feature list, mean and basis
// are part of the Model (about 8 MiB of JSON at the defaults). EndpointEmbedder calls an
// OpenAI-compatible /v1/embeddings endpoint through package llm (cache,
// retries, rate limits, budget).
//
// # Clustering and k
//
// FitKMeans is spherical k-means: greedy k-means++ seeding, Sculley's
// mini-batch updates, a few full Lloyd passes, the best of NInit seeded
// restarts by inertia. With no k given, the candidates in [KMin, KMax]
// are scored by the mean silhouette (cosine distance) on a seeded sample
// of at most SilhouetteSample points and the highest wins, the smaller k
// on ties. Assignment is to the centroid of highest cosine similarity,
// the lower topic id on ties.
//
// # Labels
//
// Keywords are BERTopic's class-based tf-idf over the words of each
// topic (stop words and numbers removed); the label is the first three
// joined by " · ". A Namer (LLMNamer: a chat endpoint through package
// llm) can add a short name from the keywords and the samples closest
// to the centroid.
//
// # Determinism
//
// Every random choice comes from Config.Seed (PCG streams per purpose),
// sums are taken in a fixed order, and parallel loops split work by rows
// that one goroutine computes whole, so the same sample set, config and
// seed give the same model, byte for byte, on any number of CPUs (of one
// architecture: gonum's assembly kernels may round differently from its
// pure-Go ones).
package topics
