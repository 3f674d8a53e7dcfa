#!/bin/sh
# mesh_tasks apply: make this node match the files staged in $1 without dropping tunnels.
#
# Pushed next to the staged files and run by the controller as root (directly or via sudo).
# Idempotent: running it twice with the same stage changes nothing the second time.
#   $1/files/etc/wireguard/IFACE.conf  every managed WireGuard interface this node must have
#   $1/files/etc/frr/frr.conf          present in routed mode only
# Managed files carry the "Managed by mesh_tasks" header; files without it are never touched.
# Prints one line per action ("created wgt3", "synced wg0", "re-announced ...", "warning: ...") and
# "apply-ok" at the end; the controller restores the previous files (the same way) if this exits non-zero.
set -u
STAGE=$1
WG=/etc/wireguard
MARK='# Managed by mesh_tasks'
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export WG_QUICK_USERSPACE_IMPLEMENTATION=${WG_QUICK_USERSPACE_IMPLEMENTATION:-wireguard-go}
# The heavy, non-urgent work (frr-reload.py and its vtysh calls) runs at low priority: an ospfd or
# wireguard-go waiting for the CPU sends hellos late, and late hellos drop adjacencies.
LOW='nice -n 10'

fail() { echo "apply-error: $*"; exit 1; }

# Atomic install: temp file in the same directory, then rename.
install_file() {  # src dest mode [owner]
	tmp="$2.mesh_tasks.$$"
	cp "$1" "$tmp" && chmod "$3" "$tmp" || fail "cannot write $2"
	[ -n "${4:-}" ] && { chown "$4" "$tmp" 2>/dev/null || true; }
	mv -f "$tmp" "$2" || fail "cannot rename into $2"
}

interface_section() { sed -n '/^\[Interface\]/,/^\[Peer\]/p' "$1" 2>/dev/null; }

# Static mode: AllowedIPs is the routing table; keep the kernel routes of the interface equal to it.
sync_routes() {  # iface
	grep -q '^Table = off' "$WG/$1.conf" && return 0
	want=$(wg show "$1" allowed-ips | cut -f2 | tr ' ' '\n' | grep / | sort -u)  # field 1 is a key (has '/')
	for p in $want; do ip route replace "$p" dev "$1" || fail "route $p dev $1"; done
	for fam in -4 -6; do
		ip $fam route show dev "$1" | awk '$0 !~ /proto kernel/ {print $1}' | while read -r p; do
			# `ip route` prints host routes without /32 or /128: compare in that form
			echo "$want" | sed 's#/32$##; s#/128$##' | grep -qxF "$p" || ip $fam route del "$p" dev "$1"
		done
	done
}

[ -d "$STAGE/files" ] || fail "no staged files in $STAGE"
fresh=""  # interfaces created or restarted by this run
mkdir -p "$WG" && chmod 700 "$WG"

for f in "$STAGE"/files/etc/wireguard/*.conf; do
	[ -e "$f" ] || continue
	i=$(basename "$f" .conf)
	dest="$WG/$i.conf"
	old_iface=$(interface_section "$dest")
	cmp -s "$f" "$dest" && same=1 || same=0
	[ $same = 1 ] || install_file "$f" "$dest" 600
	if ! ip link show dev "$i" >/dev/null 2>&1; then
		wg-quick up "$i" >"$STAGE/wg-quick-$i.log" 2>&1 || { cat "$STAGE/wg-quick-$i.log"; fail "wg-quick up $i"; }
		echo "created $i"
		fresh="$fresh $i"
	elif [ $same = 0 ] && [ "$old_iface" != "$(interface_section "$dest")" ]; then
		# Address/MTU/port changed: the only case that restarts the interface (allocations are sticky).
		wg-quick down "$i" >/dev/null 2>&1
		wg-quick up "$i" >"$STAGE/wg-quick-$i.log" 2>&1 || { cat "$STAGE/wg-quick-$i.log"; fail "wg-quick up $i"; }
		echo "restarted $i"
		fresh="$fresh $i"
	elif [ $same = 0 ]; then
		# Only the differences: unchanged peers keep their sessions. syncconf without a PrivateKey line
		# would CLEAR the key, so the key goes in through a pipe: never on disk, never off the node.
		{ printf '[Interface]\nPrivateKey = %s\n' "$(cat "$WG/private.key")"; wg-quick strip "$i" | sed 1d; } \
			| wg syncconf "$i" /dev/stdin || fail "wg syncconf $i"
		sync_routes "$i"
		echo "synced $i"
	fi
done

frr_new="$STAGE/files/etc/frr/frr.conf"
if [ -e "$frr_new" ] && ! cmp -s "$frr_new" /etc/frr/frr.conf; then
	install_file "$frr_new" /etc/frr/frr.conf 640 frr:frr
	$LOW /usr/lib/frr/frr-reload.py --reload /etc/frr/frr.conf >"$STAGE/frr-reload.log" 2>&1 \
		|| { tail -20 "$STAGE/frr-reload.log"; fail "frr-reload.py"; }
	echo "reloaded frr"
fi

# zebra (FRR 8.4) now and then never learns the address of a freshly created interface: it can handle the
# RTM_NEWADDR before the RTM_NEWLINK and drop it (FRRouting/frr#13288). OSPF then says "not enabled on this
# interface" and the adjacency never forms (seen on 6- and 24-host labs). For the interfaces this run
# created or restarted: give zebra a second to catch up, then announce the address again (delete + add)
# where zebra has the interface from the kernel but not its address, and check once more. Interfaces that
# carry traffic already, or a zebra that does not answer, are never touched.
unknown_to_zebra() {  # prints "iface=address" for each address of $fresh that zebra lacks
	$LOW vtysh -c 'show interface' 2>/dev/null | awk '
		/^Interface / { i = $2; print i, "-" }
		/^  (pseudo|index [0-9]+ inactive) interface/ { print i, "not-from-kernel" }
		/^  inet / { print i, $2 }' >"$STAGE/zebra"
	for i in $fresh; do
		grep -qxF "$i -" "$STAGE/zebra" || continue
		grep -qxF "$i not-from-kernel" "$STAGE/zebra" && continue  # zebra has not seen the link yet: wait
		for a in $(ip -4 -o address show dev "$i" | awk '{print $4}'); do
			grep -qxF "$i $a" "$STAGE/zebra" || echo "$i=$a"
		done
	done
}
wait_for_zebra() {  # prints what zebra still lacks after about a second
	for _ in 1 2 3 4; do
		missing=$(unknown_to_zebra)
		[ -z "$missing" ] && return 0
		sleep 0.25
	done
	echo "$missing"
}
announce_addresses() {
	for m in $(wait_for_zebra); do
		ip address del "${m#*=}" dev "${m%%=*}" && ip address add "${m#*=}" dev "${m%%=*}" \
			|| fail "cannot announce ${m#*=} on ${m%%=*}"
		echo "re-announced ${m#*=} on ${m%%=*}"
	done
	for m in $(wait_for_zebra); do
		echo "warning: zebra still lacks ${m#*=} on ${m%%=*} (verify will show the adjacency down)"
	done
}
[ -e "$frr_new" ] && [ -n "$fresh" ] && announce_addresses

# Interfaces this tool made that the plan no longer has: down and gone.
for dest in "$WG"/*.conf; do
	[ -e "$dest" ] || continue
	i=$(basename "$dest" .conf)
	[ -e "$STAGE/files/etc/wireguard/$i.conf" ] && continue
	head -n 1 "$dest" | grep -qF "$MARK" || continue
	wg-quick down "$i" >/dev/null 2>&1 || ip link del dev "$i" 2>/dev/null
	rm -f "$dest"
	echo "removed $i"
done
echo apply-ok
