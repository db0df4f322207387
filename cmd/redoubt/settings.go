package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/vpn/wgconfig"
)

const settingsUsage = `Usage: redoubt settings [show] [--json] [--socket PATH]
       redoubt settings set KEY=VALUE… [--json] [--socket PATH]

What the Settings page shows and changes:
  name=NAME                  the box's name (it answers to NAME.<domain>)
  lan_address=ADDRESS/BITS   the box's address on the LAN port (the box moves)
  lease_time=DURATION        how long devices keep their address (12h, 30m)
  reservations=MAC=IP,…      addresses kept for devices ("" for none)
  vpn.config=FILE            the VPN provider's WireGuard config ("-": standard input)
  team.server=URL            the team's Headscale server
  team.api_key=KEY           its API key ("-": read it from standard input)

Tests: redoubt vpn test, redoubt team test.
`

func cmdSettings(args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Print(settingsUsage)
		return nil
	}
	fs := flags("settings", "settings [show|set KEY=VALUE…]")
	fs.Usage = func() { fmt.Fprint(fs.Output(), settingsUsage) }
	socket, asJSON := apiFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	c := localapi.NewClient(*socket)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if len(pos) == 0 || pos[0] == "show" {
		if len(pos) > 1 {
			return errors.New("usage: redoubt settings show")
		}
		s, err := c.Settings(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(s)
		}
		return printSettings(s)
	}
	if pos[0] != "set" || len(pos) == 1 {
		return fmt.Errorf("usage: redoubt settings set KEY=VALUE…\n\n%s", settingsUsage)
	}
	var ch localapi.SettingsChange
	var mesh *localapi.MeshSettings
	var vpnText []byte
	stdinUsed := false
	readStdin := func(what string) (string, error) {
		if stdinUsed {
			return "", fmt.Errorf("only one value can come from standard input (%s)", what)
		}
		stdinUsed = true
		b, err := io.ReadAll(io.LimitReader(bufio.NewReader(os.Stdin), wgconfig.MaxSize+1))
		if err != nil {
			return "", fmt.Errorf("reading %s from standard input: %w", what, err)
		}
		return string(b), nil
	}
	for _, kv := range pos[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q: write KEY=VALUE", kv)
		}
		switch k {
		case "name", "box_name":
			ch.BoxName = &v
		case "lan_address":
			ch.LANAddress = &v
		case "lease_time":
			ch.LeaseTime = &v
		case "reservations":
			rs, err := parseReservationList(v)
			if err != nil {
				return err
			}
			ch.Reservations = &rs
		case "vpn.config":
			var err error
			if v == "-" {
				var s string
				s, err = readStdin("the VPN config")
				vpnText = []byte(s)
			} else {
				vpnText, err = readSmall(v, wgconfig.MaxSize)
			}
			if err != nil {
				return err
			}
			if _, err := wgconfig.Parse(vpnText); err != nil {
				return fmt.Errorf("vpn.config %s: %w", v, err)
			}
		case "team.server", "team.api_key":
			if mesh == nil {
				mesh = &localapi.MeshSettings{}
			}
			if k == "team.server" {
				mesh.LoginServer = v
				continue
			}
			if v == "-" {
				s, err := readStdin("the API key")
				if err != nil {
					return err
				}
				v = strings.TrimSpace(s)
			}
			mesh.APIKey = v
		default:
			return fmt.Errorf("unknown setting %q\n\n%s", k, settingsUsage)
		}
	}
	if ch != (localapi.SettingsChange{}) {
		if _, err := c.ChangeSettings(ctx, ch); err != nil {
			return settingErr(err)
		}
	}
	if vpnText != nil {
		if _, err := c.SetVPN(ctx, vpnText); err != nil {
			return fmt.Errorf("vpn.config: %w", err)
		}
	}
	if mesh != nil {
		if mesh.LoginServer == "" {
			cur, err := c.Settings(ctx)
			if err != nil {
				return err
			}
			mesh.LoginServer = cur.Team.LoginServer
		}
		if err := c.SetMesh(ctx, *mesh); err != nil {
			return settingErr(err)
		}
	}
	s, err := c.Settings(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(s)
	}
	fmt.Println("Saved.")
	return printSettings(s)
}

// settingErr names the setting the box refused, in the command's words.
func settingErr(err error) error {
	var fe *localapi.FieldError
	if errors.As(err, &fe) && fe.Field != "" {
		names := map[string]string{"box_name": "name", "login_server": "team.server", "api_key": "team.api_key"}
		f := fe.Field
		if n, ok := names[f]; ok {
			f = n
		}
		return fmt.Errorf("%s: %s", f, fe.Message)
	}
	return err
}

// parseReservationList reads "MAC=IP,MAC=IP".
func parseReservationList(s string) ([]localapi.Reservation, error) {
	out := []localapi.Reservation{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		mac, ip, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("reservations: %q: write the hardware address, =, then the address (02:52:44:00:00:64=10.201.86.20)", item)
		}
		out = append(out, localapi.Reservation{MAC: strings.TrimSpace(mac), IP: strings.TrimSpace(ip)})
	}
	return out, nil
}

func printSettings(s localapi.Settings) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "name\t%s\n", s.BoxName)
	fmt.Fprintf(w, "lan_address\t%s\n", s.LANAddress)
	fmt.Fprintf(w, "lease_time\t%s\n", s.LeaseTime)
	var rs []string
	for _, r := range s.Reservations {
		rs = append(rs, r.MAC+"="+r.IP)
	}
	fmt.Fprintf(w, "reservations\t%s\n", dash(strings.Join(rs, ",")))
	vpn := s.VPN.State
	if s.VPN.Endpoint != "" {
		vpn += " (" + s.VPN.Endpoint + ")"
	}
	if s.VPN.Reason != "" {
		vpn += ": " + s.VPN.Reason
	}
	if s.VPN.Exit != "" {
		vpn += "; exit address " + s.VPN.Exit
	}
	if s.VPN.FromFile {
		vpn += " [set in the config file]"
	}
	fmt.Fprintf(w, "vpn\t%s\n", vpn)
	team := "not set up"
	if s.Team.Configured {
		team = s.Team.LoginServer
		if s.Team.Detail != "" {
			team += ": " + s.Team.Detail
		}
	}
	fmt.Fprintf(w, "team.server\t%s\n", team)
	return w.Flush()
}
