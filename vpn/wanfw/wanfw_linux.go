package wanfw

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Firewall installs the table in one network namespace.
type Firewall struct {
	opts []nftables.ConnOption
}

// New returns a Firewall for the current network namespace, or for the one whose
// file descriptor netns is (tests), when netns ≥ 0.
func New(netns int) *Firewall {
	f := &Firewall{}
	if netns >= 0 {
		f.opts = append(f.opts, nftables.WithNetNSFd(netns))
	}
	return f
}

var table = &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}

// Apply replaces the table with one built from r, atomically.
func (f *Firewall) Apply(r Rules) error {
	if err := r.Validate(); err != nil {
		return err
	}
	c, err := nftables.New(f.opts...)
	if err != nil {
		return fmt.Errorf("opening nftables: %w", err)
	}
	// Add (a no-op if it exists), delete, add again: one transaction that
	// replaces any previous table, or makes the first.
	c.AddTable(table)
	c.DelTable(table)
	c.AddTable(table)
	drop := nftables.ChainPolicyDrop
	chain := func(name string, hook *nftables.ChainHook) *nftables.Chain {
		return c.AddChain(&nftables.Chain{
			Name: name, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &drop,
		})
	}
	out := chain("output", nftables.ChainHookOutput)
	in := chain("input", nftables.ChainHookInput)
	fwd := chain("forward", nftables.ChainHookForward)
	rule := func(ch *nftables.Chain, exprs ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: exprs})
	}
	accept := &expr.Verdict{Kind: expr.VerdictAccept}

	// Loopback: the box talks to itself (the local API is a Unix socket, but
	// tools and tests use 127.0.0.1).
	rule(out, append(ifname(expr.MetaKeyOIFNAME, "lo"), accept)...)
	rule(in, append(ifname(expr.MetaKeyIIFNAME, "lo"), accept)...)
	if r.Endpoint.IsValid() {
		a := r.Endpoint.Addr().Unmap()
		nfproto, daddrOff, saddrOff, alen := byte(unix.NFPROTO_IPV4), uint32(16), uint32(12), uint32(4)
		if a.Is6() {
			nfproto, daddrOff, saddrOff, alen = unix.NFPROTO_IPV6, 24, 8, 16
		}
		port := binaryutil.BigEndian.PutUint16(r.Endpoint.Port())
		udp := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		}
		// Out: the marked VPN socket, to the endpoint, its port.
		outRule := append([]expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(r.Mark)},
		}, udp...)
		outRule = append(outRule,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddrOff, Len: alen},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
			accept)
		rule(out, outRule...)
		// In: replies to what went out (the VPN's flow and the ICMP errors
		// about it), and datagrams from the endpoint's port.
		rule(in,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
			accept)
		inRule := append([]expr.Any{}, udp...)
		inRule = append(inRule,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOff, Len: alen},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
			accept)
		rule(in, inRule...)
		if d := r.Direct; d.On() {
			dport := binaryutil.BigEndian.PutUint16(d.Port)
			udpAny := []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			}
			// Out: the one marked socket on the port, to anywhere.
			rule(out, append(append([]expr.Any{
				&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(d.Mark)},
			}, udpAny...),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dport},
				accept)...)
			// In: anything to the port (see DirectPaths for why).
			rule(in, append(append([]expr.Any{}, udpAny...),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dport},
				accept)...)
			// Before routing, datagrams to the port take the socket's mark, so
			// that the reverse-path filter finds the marked route back.
			accepting := nftables.ChainPolicyAccept
			pre := c.AddChain(&nftables.Chain{
				Name: "prerouting", Table: table, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle, Policy: &accepting,
			})
			rule(pre, append(append([]expr.Any{}, udpAny...),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dport},
				&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(d.Mark)},
				&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})...)
		}
		if a.Is6() {
			// An IPv6 endpoint needs neighbour discovery with the router.
			for _, ch := range []*nftables.Chain{out, in} {
				rule(ch,
					&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
					&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
					&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{133}, ToData: []byte{136}},
					accept)
			}
		}
	}
	// Count what the policy is about to drop.
	for _, ch := range []*nftables.Chain{out, in, fwd} {
		rule(ch, &expr.Counter{})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("installing the firewall (nftables table inet %s): %w", Table, err)
	}
	return nil
}

// Remove deletes the table, if it is there.
func (f *Firewall) Remove() error {
	c, err := nftables.New(f.opts...)
	if err != nil {
		return fmt.Errorf("opening nftables: %w", err)
	}
	c.AddTable(table)
	c.DelTable(table)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("removing the firewall (nftables table inet %s): %w", Table, err)
	}
	return nil
}

// Counters reads the drop counters of the installed table.
func (f *Firewall) Counters() (Counters, error) {
	var cs Counters
	c, err := nftables.New(f.opts...)
	if err != nil {
		return cs, fmt.Errorf("opening nftables: %w", err)
	}
	if _, err := c.ListTableOfFamily(Table, nftables.TableFamilyINet); err != nil {
		return cs, fmt.Errorf("the firewall is not installed: %w", err)
	}
	for name, dst := range map[string]*uint64{"output": &cs.OutDropped, "input": &cs.InDropped, "forward": &cs.ForwardDropped} {
		rules, err := c.GetRules(table, &nftables.Chain{Name: name, Table: table})
		if err != nil {
			return cs, fmt.Errorf("reading the firewall's %s chain: %w", name, err)
		}
		if len(rules) == 0 {
			continue
		}
		last := rules[len(rules)-1]
		for _, e := range last.Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				*dst = ctr.Packets
			}
		}
	}
	return cs, nil
}

// ifname matches an interface name (as the kernel pads it, to 16 bytes).
func ifname(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}
