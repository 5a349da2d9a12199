package retry

import (
	"math/rand/v2"
	"time"
)

// A Backoff returns how long to wait after attempt number attempt (1 for the
// first) failed, before the next one. It must be safe for concurrent use: one
// Backoff serves every Send. A negative result counts as zero.
type Backoff func(attempt int) time.Duration

// Exponential returns a Backoff with full jitter: after attempt n it waits a
// uniformly random time in [0, min(limit, base*2^(n-1))]. Randomising the
// whole interval spreads out the retries of many senders that failed at the
// same moment (say, on a 421 from a restarting server). A non-positive base
// or limit gives no wait.
func Exponential(base, limit time.Duration) Backoff {
	return func(attempt int) time.Duration {
		c := ceiling(base, limit, attempt)
		if c <= 0 {
			return 0
		}
		if c == 1<<63-1 {
			return time.Duration(rand.Int64N(int64(c)))
		}
		return time.Duration(rand.Int64N(int64(c) + 1))
	}
}

// ceiling returns min(limit, base*2^(attempt-1)) without overflowing.
func ceiling(base, limit time.Duration, attempt int) time.Duration {
	if base <= 0 || limit <= 0 {
		return 0
	}
	c := base
	for i := 1; i < attempt && c < limit; i++ {
		if c > limit/2 {
			c = limit
			break
		}
		c *= 2
	}
	return min(c, limit)
}
