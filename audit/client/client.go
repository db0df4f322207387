// Package client verifies a box's audit log from outside, as a member's
// device does: it fetches the latest checkpoint, checks the log's signature,
// checks that it extends the checkpoint seen before (a consistency proof),
// optionally checks every record against it (inclusion proofs), and checks
// the witnesses' cosigned checkpoints against it, so a box that rewrote its
// history or showed members different histories is caught.
//
// `redoubt audit verify` is built on it; tests use it against tampered logs.
// Any room may import it.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/audit/auditlog"
	"github.com/redoubt/redoubt/audit/checkpoint"
)

// State is what a verifier keeps between visits: the log's key (pinned at
// the first visit) and the last checkpoint it verified.
type State struct {
	Key        string `json:"key"`
	Checkpoint string `json:"checkpoint,omitempty"`
}

// Client talks to a log's HTTP API (auditlog.Handler) at Base.
type Client struct {
	// Base is the API's URL, ending in "/": https://box.team/audit/api/.
	Base string
	// HTTP reaches it (required): over the member's tailnet, or the box's
	// local API socket.
	HTTP *http.Client
}

// ErrKeyChanged: the box's log is signed by another key than the one pinned.
var ErrKeyChanged = errors.New("the log's key changed: the box was reset or replaced, or someone impersonates it")

// Options say how much to check.
type Options struct {
	// Full fetches every record and checks it against the new checkpoint.
	Full bool
}

// Result is what a verification found.
type Result struct {
	Prev, Next checkpoint.Checkpoint
	// Key is the log's key the checkpoints verified with.
	Key string
	// First: no checkpoint was saved; the key was pinned now.
	First bool
	// Signed is the verified checkpoint, to save.
	Signed []byte
	// Records, with Options.Full.
	Records []audit.Record
	// Witnesses whose cosigned checkpoints agree with Next.
	Witnesses []string
	// SplitViews are witnesses' checkpoints that disagree with Next: the box
	// showed them another history.
	SplitViews []string
}

// Verify checks the log against st and returns what it found; st is not
// changed (save Result.Signed and the key when it succeeds).
func (c *Client) Verify(ctx context.Context, st State, opts Options) (Result, error) {
	var res Result
	key, err := c.get(ctx, "key")
	if err != nil {
		return res, fmt.Errorf("fetching the log's key: %w", err)
	}
	boxKey := strings.TrimSpace(string(key))
	if st.Key == "" {
		st.Key, res.First = boxKey, true
	} else if boxKey != st.Key {
		return res, fmt.Errorf("%w (pinned %s, the box says %s)", ErrKeyChanged, st.Key, boxKey)
	}
	res.Key = st.Key
	signed, err := c.get(ctx, "checkpoint")
	if err != nil {
		return res, fmt.Errorf("fetching the checkpoint: %w", err)
	}
	next, _, err := checkpoint.Open(signed, st.Key)
	if err != nil {
		return res, err
	}
	res.Next, res.Signed = next, signed
	if st.Checkpoint != "" {
		prev, _, err := checkpoint.Open([]byte(st.Checkpoint), st.Key)
		if err != nil {
			return res, fmt.Errorf("the saved checkpoint: %w", err)
		}
		res.Prev = prev
		if err := c.consistent(ctx, prev, next); err != nil {
			return res, err
		}
	} else {
		res.First = true
	}
	if opts.Full {
		recs, err := c.records(ctx, next)
		if err != nil {
			return res, err
		}
		res.Records = recs
	}
	if err := c.witnesses(ctx, st.Key, next, &res); err != nil {
		return res, err
	}
	if len(res.SplitViews) > 0 {
		return res, fmt.Errorf("split view: the box showed other members another history: %s", strings.Join(res.SplitViews, "; "))
	}
	return res, nil
}

// consistent checks that next extends prev with a proof from the box.
func (c *Client) consistent(ctx context.Context, prev, next checkpoint.Checkpoint) error {
	if prev.Origin != next.Origin {
		return fmt.Errorf("%w: %q, not %q", checkpoint.ErrOtherLog, next.Origin, prev.Origin)
	}
	if next.Size < prev.Size {
		return fmt.Errorf("%w (size %d, was %d)", checkpoint.ErrShrunk, next.Size, prev.Size)
	}
	var proof tlog.TreeProof
	if prev.Size > 0 && next.Size > prev.Size {
		var resp auditlog.ConsistencyResponse
		if err := c.getJSON(ctx, "consistency?old="+strconv.FormatInt(prev.Size, 10)+"&new="+strconv.FormatInt(next.Size, 10), &resp); err != nil {
			// A box that no longer has the records it signed cannot prove
			// anything: say it as what it is.
			return fmt.Errorf("%w: the box gave no proof from size %d to %d: %v", checkpoint.ErrInconsistent, prev.Size, next.Size, err)
		}
		for _, h := range resp.Proof {
			if len(h) != tlog.HashSize {
				return fmt.Errorf("%w: a proof hash of %d bytes", checkpoint.ErrInconsistent, len(h))
			}
			proof = append(proof, tlog.Hash(h))
		}
	}
	return checkpoint.CheckConsistency(prev, next, proof)
}

// records fetches every record of next and checks each one's inclusion.
func (c *Client) records(ctx context.Context, next checkpoint.Checkpoint) ([]audit.Record, error) {
	var out []audit.Record
	for start := int64(0); start < next.Size; {
		end := min(start+256, next.Size)
		var resp auditlog.EntriesResponse
		q := fmt.Sprintf("entries?start=%d&end=%d&size=%d", start, end, next.Size)
		if err := c.getJSON(ctx, q, &resp); err != nil {
			return nil, fmt.Errorf("fetching records %d–%d: %w", start, end, err)
		}
		if len(resp.Entries) == 0 {
			return nil, fmt.Errorf("fetching records %d–%d: none given", start, end)
		}
		for _, e := range resp.Entries {
			if e.Index != start {
				return nil, fmt.Errorf("%w: asked for record %d, got %d", checkpoint.ErrNotIncluded, start, e.Index)
			}
			var proof tlog.RecordProof
			for _, h := range e.Proof {
				if len(h) != tlog.HashSize {
					return nil, fmt.Errorf("%w: record %d: a proof hash of %d bytes", checkpoint.ErrNotIncluded, e.Index, len(h))
				}
				proof = append(proof, tlog.Hash(h))
			}
			if err := checkpoint.CheckInclusion(next, e.Index, e.Data, proof); err != nil {
				return nil, err
			}
			r, err := audit.ParseRecord(e.Data)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", e.Index, err)
			}
			out = append(out, r)
			start++
		}
	}
	return out, nil
}

// witnesses checks every witness's cosigned checkpoint against next.
func (c *Client) witnesses(ctx context.Context, logKey string, next checkpoint.Checkpoint, res *Result) error {
	var ws []auditlog.WitnessStatus
	if err := c.getJSON(ctx, "witnesses", &ws); err != nil {
		return fmt.Errorf("fetching the witnesses: %w", err)
	}
	for _, w := range ws {
		if w.Checkpoint == "" {
			continue
		}
		wk, err := checkpoint.ParseWitnessKey(w.Key)
		if err != nil {
			continue
		}
		wc, n, err := checkpoint.Open([]byte(w.Checkpoint), logKey, wk)
		if err != nil || len(checkpoint.Cosignatures(n, []checkpoint.Witness{wk})) == 0 {
			continue // not signed by the log or not by the witness: proves nothing
		}
		a, b := wc, next
		if a.Size > b.Size {
			a, b = b, a
		}
		if err := c.consistent(ctx, a, b); err != nil {
			res.SplitViews = append(res.SplitViews, fmt.Sprintf("%s (%s) saw size %d: %v", w.Member, wk.Name, wc.Size, err))
			continue
		}
		res.Witnesses = append(res.Witnesses, wk.Name)
	}
	return nil
}

func (c *Client) get(ctx context.Context, path string) ([]byte, error) {
	base := c.Base
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.HTTP == nil {
		return nil, errors.New("audit client: no HTTP client")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s: %.200s", resp.Status, body)
	}
	return body, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	b, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
