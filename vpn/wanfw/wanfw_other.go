//go:build !linux

package wanfw

import "errors"

// Firewall is Linux-only.
type Firewall struct{}

var errUnsupported = errors.New("the box's firewall needs Linux nftables")

// New returns a Firewall that refuses to work off Linux.
func New(netns int) *Firewall { return &Firewall{} }

// Apply fails off Linux.
func (f *Firewall) Apply(Rules) error { return errUnsupported }

// Remove fails off Linux.
func (f *Firewall) Remove() error { return errUnsupported }

// Counters fails off Linux.
func (f *Firewall) Counters() (Counters, error) { return Counters{}, errUnsupported }
