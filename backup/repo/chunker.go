package repo

import (
	"errors"
	"io"
)

// Chunk sizes: content-defined cuts (a gear rolling hash, normalized as in
// FastCDC) between 256 KiB and 4 MiB, about 1 MiB on average, so an edit in
// the middle of a file changes one or two chunks and the rest deduplicate.
// The gear table comes from the repository's key: cut points say nothing a
// store could match against known files.
const (
	minChunk = 256 << 10
	avgChunk = 1 << 20
	maxChunk = 4 << 20
	// The hash's top bits must be zero to cut: more of them before the
	// average size, fewer after.
	bitsSmall = 22
	bitsLarge = 18
)

// chunker splits a stream into chunks.
type chunker struct {
	r        io.Reader
	gear     *[256]uint64
	buf      []byte
	pos, end int
	eof      bool
}

func newChunker(r io.Reader, gear *[256]uint64, buf []byte) *chunker {
	if cap(buf) < 2*maxChunk {
		buf = make([]byte, 2*maxChunk)
	}
	return &chunker{r: r, gear: gear, buf: buf[:2*maxChunk]}
}

// Next returns the next chunk, valid until the next call, or io.EOF.
func (c *chunker) Next() ([]byte, error) {
	if c.end-c.pos < maxChunk && !c.eof {
		copy(c.buf, c.buf[c.pos:c.end])
		c.end -= c.pos
		c.pos = 0
		for c.end < len(c.buf) && !c.eof {
			n, err := c.r.Read(c.buf[c.end:])
			c.end += n
			if errors.Is(err, io.EOF) {
				c.eof = true
			} else if err != nil {
				return nil, err
			}
		}
	}
	if c.pos == c.end {
		return nil, io.EOF
	}
	n := cut(c.gear, c.buf[c.pos:c.end])
	chunk := c.buf[c.pos : c.pos+n]
	c.pos += n
	return chunk, nil
}

// cut returns where the first chunk of data ends.
func cut(gear *[256]uint64, data []byte) int {
	n := len(data)
	if n <= minChunk {
		return n
	}
	n = min(n, maxChunk)
	normal := min(n, avgChunk)
	var h uint64
	i := minChunk - 64 // the hash sees 64 bytes back
	for ; i < minChunk; i++ {
		h = h<<1 + gear[data[i]]
	}
	for ; i < normal; i++ {
		h = h<<1 + gear[data[i]]
		if h>>(64-bitsSmall) == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		h = h<<1 + gear[data[i]]
		if h>>(64-bitsLarge) == 0 {
			return i + 1
		}
	}
	return n
}
