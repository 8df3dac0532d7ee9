package dedup

// Candidate edge policies of an LSH bucket (the recipe's fuzzy_dedup
// edges: setting).
const (
	// EdgesLinear links every member to the bucket's first BucketLeaders
	// members and to its predecessor: at most (BucketLeaders+1)·n edges
	// for n members, every pair when n ≤ BucketLeaders+1. The default.
	EdgesLinear = "linear"
	// EdgesAll is every pair of a bucket, n(n−1)/2; buckets with more
	// pairs than a cap fall back to EdgesLinear.
	EdgesAll = "all"
	// EdgesStar links every member to the bucket's first only.
	EdgesStar = "star"
)

// BucketLeaders is how many leading members of a bucket every other
// member is linked to under EdgesLinear. Members are sorted (by the keep
// policy's node order), so the leaders are the likeliest survivors; the
// predecessor link lets a run of members that fail to verify against the
// leaders (a second group of documents sharing the bucket by chance)
// still join up with each other.
const BucketLeaders = 3

// BucketEdges calls emit(i, j), i < j, for the candidate edges among the
// n sorted, distinct members of one bucket under policy (EdgesLinear when
// empty). maxPairs caps EdgesAll (0: no cap). It returns the number of
// edges emitted. The work is linear in n except under an uncapped
// EdgesAll.
func BucketEdges(n int, policy string, maxPairs int, emit func(i, j int)) int {
	if n < 2 {
		return 0
	}
	count := 0
	switch policy {
	case EdgesStar:
		for j := 1; j < n; j++ {
			emit(0, j)
		}
		return n - 1
	case EdgesAll:
		if maxPairs <= 0 || n*(n-1)/2 <= maxPairs {
			for i := 0; i < n; i++ {
				for j := i + 1; j < n; j++ {
					emit(i, j)
				}
			}
			return n * (n - 1) / 2
		}
	}
	for j := 1; j < n; j++ {
		for i := 0; i < j && i < BucketLeaders; i++ {
			emit(i, j)
			count++
		}
		if j-1 >= BucketLeaders {
			emit(j-1, j)
			count++
		}
	}
	return count
}
