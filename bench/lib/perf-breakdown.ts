// Where a forwarder's CPU goes: the symbols of a flat `perf report` (comm,dso,symbol) summed
// into the stages every TAP-to-TAP forwarder goes through, so forwarders compare by stage
// rather than by symbol lists that differ in their names.

/** Stages in the order a frame meets them; `other` takes what matches none. */
export const kStages = [
  'user space',
  'system call entry/exit',
  'io_uring',
  'epoll / poll',
  'TAP read (tun_do_read, copy out)',
  'TAP write (tun_get_user, skb build)',
  "receiving namespace's stack (ip, udp, route)",
  'skb and memory alloc/free',
  'scheduler, wake-ups',
  'other kernel',
] as const;
export type Stage = (typeof kStages)[number];

// First match wins; symbols are kernel symbols unless the object is not the kernel.
const kRules: [Stage, RegExp][] = [
  ['io_uring', /^(__)?io_|^kiocb_|io_uring/],
  [
    'epoll / poll',
    /^(__x64_sys_|do_)?epoll|^ep_|^(do_)?sys_poll|^do_poll|^__pollwait|poll_freewait|tun_chr_poll|^poll_/,
  ],
  [
    'system call entry/exit',
    /^entry_SYSCALL|^do_syscall|^syscall_|^__x64_sys_|^ksys_|^vfs_(read|write)|^rw_verify_area|^(__)?f(d)?get|^fput|^__fdget|^x64_sys_call|^exit_to_user|^fpregs_|^switch_fpu|^restore_fpregs|^srso_|^__pfx|^__task_pid_nr_ns|^security_file_permission|^apparmor_file|^fsnotify|^__fsnotify/,
  ],
  [
    'TAP read (tun_do_read, copy out)',
    /^tun_(do_read|chr_read|ring_recv|put_user)|_copy_to_iter|^iov_iter_(zero|advance)|^is_vmalloc_addr|^__skb_datagram_iter|^skb_copy_datagram|^simple_copy_to_iter|^__check_object_size|^(__)?check_heap_object|^__virt_addr_valid/,
  ],
  [
    'TAP write (tun_get_user, skb build)',
    /^tun_(get_user|build_skb|chr_write|alloc_skb|rx_batched|napi|sock_write_space)|_copy_from_iter|^copy_page_from_iter|^skb_set_owner_w|^skb_defer_rx_timestamp|^build_skb|^__build_skb|^__skb_flow_dissect|^skb_probe_transport|^eth_type_trans|^page_frag|^__page_frag|^skb_page_frag|^sock_alloc_send|^alloc_skb_with_frags|^skb_put|^virtio_net_hdr/,
  ],
  [
    "receiving namespace's stack (ip, udp, route)",
    /^(__)?netif_|^__netif|^netif_receive|^process_backlog|^ip_|^__ip_|^udp|^__udp|^fib_|^__fib|^ipv4_|^icmp|^raw_|^sk_filter|^nf_|^__inet|^inet_|^tcp|^__tcp|^dst_|^skb_release_head_state|^sock_def_readable|^__sk_receive|^sk_(data|skb)|^ipv6_|^ip6|^rt_|^__rt|^l3mdev|^xfrm|^__xfrm|^arp_|^neigh_|^eth_|^dev_gro|^napi_|^__napi|^gro_|^__dev_queue|^dev_queue|^sch_|^pfifo|^__qdisc|^qdisc|^validate_xmit|^dev_hard_start|^tun_net_xmit|^skb_clone|^sock_queue_rcv|^__sock_queue/,
  ],
  [
    'skb and memory alloc/free',
    /^kmem_|^__kmem|^kfree|^__kfree|^kmalloc|^__kmalloc|^__slab|^slab_|^___slab|^__free|^free_|^__alloc|^alloc_|^get_page|^put_page|^__put_page|^__folio|^folio_|^skb_release|^consume_skb|^__consume|^skb_free|^sock_wfree|^sock_rfree|^__build_skb_around|^kmalloc_reserve|^memcg|^__memcg|^mod_memcg|^refill_obj|^obj_cgroup|^__mod_|^mod_|^page_counter|^rmqueue|^__rmqueue|^memset|^memcpy|^__memcpy|^__memset|^clear_page|^skb_attempt_defer/,
  ],
  [
    'scheduler, wake-ups',
    /schedule|^finish_task_switch|^try_to_wake_up|^ttwu|^__wake_up|^wake_up|^pick_next|^dequeue|^enqueue|^update_(curr|load|rq)|^__update_load|^psi_|^__switch_to|^native_sched|^sched_|^hrtimer|^__hrtimer|^tick_|^irq_|^__irq|^do_softirq|^__do_softirq|^handle_softirqs|^_raw_spin|^raw_spin|^native_queued|^queued_spin|^__local_bh|^local_bh|^asm_sysvec|^sysvec_|^__sysvec|^native_irq|^default_idle|^cpuidle/,
  ],
];

/** One symbol line of `perf report --stdio --sort comm,dso,symbol`: percent, comm, dso, [k]/[.], symbol. */
const kSymbolLine = /^\s*([\d.]+)%\s+\S+\s+(\S+)\s+\[([k.])\]\s+(\S+)/;

export function stageOf(dso: string, kernel: boolean, symbol: string): Stage {
  if (!kernel && !dso.includes('kernel')) return 'user space';
  for (const [stage, re] of kRules) if (re.test(symbol)) return stage;
  return 'other kernel';
}

/**
 * Percent of the profiled CPU per stage, from the text `perf report` printed for the symbol
 * sort (lines below its percent limit are missing, so the stages sum to a little under 100).
 * Undefined when the text has no symbol lines.
 */
export function breakdown(perfText: string): Record<Stage, number> | undefined {
  const out = Object.fromEntries(kStages.map((s) => [s, 0])) as Record<Stage, number>;
  let seen = false;
  for (const line of perfText.split('\n')) {
    const m = kSymbolLine.exec(line);
    if (!m) continue;
    seen = true;
    out[stageOf(m[2]!, m[3] === 'k', m[4]!)] += Number(m[1]);
  }
  return seen ? out : undefined;
}
