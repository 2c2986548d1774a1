/*
 * JetStream and Key-Value through the C client (Debian's libnats-dev, nats.c 3.x), against the server at
 * argv[1]. Prints one line per step; the test runs it against brokerd and nats-server and compares the output.
 * Build: cc -o js_kv js_kv.c -lnats
 */
#include <nats/nats.h>
#include <stdio.h>
#include <string.h>

#define STEP(label, call) do { natsStatus s_ = (call); printf("%s: %s\n", label, natsStatus_GetText(s_)); } while (0)

static void print_entry(const char *label, kvStore *kv, const char *key) {
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, kv, key);
    if (s == NATS_OK) {
        printf("%s: %s rev=%llu op=%d\n", label, kvEntry_ValueString(e), (unsigned long long)kvEntry_Revision(e),
               (int)kvEntry_Operation(e));
        kvEntry_Destroy(e);
    } else {
        printf("%s: %s\n", label, natsStatus_GetText(s));
    }
}

int main(int argc, char **argv) {
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsErrCode jerr = 0;
    if (argc < 2 || natsConnection_ConnectTo(&nc, argv[1]) != NATS_OK) {
        fprintf(stderr, "cannot connect\n");
        return 1;
    }
    if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK) {
        fprintf(stderr, "no JetStream context\n");
        return 1;
    }

    /* Key-Value: revisions, create/update rules, delete, keys, history, purge, status. */
    kvStore *kv = NULL;
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = "CKV";
    kc.History = 5;
    STEP("create bucket", js_CreateKeyValue(&kv, js, &kc));
    uint64_t rev = 0;
    STEP("put a=1", kvStore_PutString(&rev, kv, "a", "1"));
    printf("rev %llu\n", (unsigned long long)rev);
    STEP("put a=2", kvStore_PutString(&rev, kv, "a", "2"));
    printf("rev %llu\n", (unsigned long long)rev);
    print_entry("get a", kv, "a");
    STEP("create a (exists)", kvStore_CreateString(&rev, kv, "a", "x"));
    STEP("update a last=1 (stale)", kvStore_UpdateString(&rev, kv, "a", "x", 1));
    STEP("update a last=2", kvStore_UpdateString(&rev, kv, "a", "3", 2));
    printf("rev %llu\n", (unsigned long long)rev);
    STEP("put b=9", kvStore_PutString(&rev, kv, "b", "9"));
    STEP("delete b", kvStore_Delete(kv, "b"));
    print_entry("get b", kv, "b");
    STEP("create b (after delete)", kvStore_CreateString(&rev, kv, "b", "10"));
    print_entry("get b", kv, "b");
    kvKeysList keys;
    if (kvStore_Keys(&keys, kv, NULL) == NATS_OK) {
        printf("keys:");
        /* Keys come in revision order of their last update. */
        for (int i = 0; i < keys.Count; i++) printf(" %s", keys.Keys[i]);
        printf("\n");
        kvKeysList_Destroy(&keys);
    }
    kvEntryList history;
    if (kvStore_History(&history, kv, "a", NULL) == NATS_OK) {
        printf("history a:");
        for (int i = 0; i < history.Count; i++)
            printf(" %s@%llu", kvEntry_ValueString(history.Entries[i]), (unsigned long long)kvEntry_Revision(history.Entries[i]));
        printf("\n");
        kvEntryList_Destroy(&history);
    }
    STEP("purge a", kvStore_Purge(kv, "a", NULL));
    print_entry("get a", kv, "a");
    kvStatus *st = NULL;
    if (kvStore_Status(&st, kv) == NATS_OK) {
        printf("status values=%llu history=%lld\n", (unsigned long long)kvStatus_Values(st), (long long)kvStatus_History(st));
        kvStatus_Destroy(st);
    }
    kvStore_Destroy(kv);

    /* A stream: dedupe, expectations, pull consumer with ack sync, last message and direct get. */
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {"cs.>"};
    sc.Name = "CS";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.AllowDirect = true;
    jsStreamInfo *si = NULL;
    STEP("add stream", js_AddStream(&si, js, &sc, NULL, &jerr));
    if (si) jsStreamInfo_Destroy(si);
    jsPubOptions po;
    jsPubAck *pa = NULL;
    jsPubOptions_Init(&po);
    po.MsgId = "m1";
    for (int i = 0; i < 2; i++) {
        natsStatus s = js_Publish(&pa, js, "cs.a", "hello", 5, &po, &jerr);
        printf("publish m1: %s seq=%llu dup=%d\n", natsStatus_GetText(s), pa ? (unsigned long long)pa->Sequence : 0ULL, pa ? pa->Duplicate : -1);
        if (pa) { jsPubAck_Destroy(pa); pa = NULL; }
    }
    jsPubOptions_Init(&po);
    po.ExpectLastSeq = 7;
    jerr = 0;
    natsStatus s = js_Publish(&pa, js, "cs.b", "x", 1, &po, &jerr);
    printf("publish expect last 7: %s err_code=%d\n", natsStatus_GetText(s), (int)jerr);
    if (pa) { jsPubAck_Destroy(pa); pa = NULL; }
    STEP("publish cs.b", js_Publish(&pa, js, "cs.b", "world", 5, NULL, &jerr));
    if (pa) { jsPubAck_Destroy(pa); pa = NULL; }

    natsSubscription *sub = NULL;
    STEP("pull subscribe", js_PullSubscribe(&sub, js, "cs.>", "cdur", NULL, NULL, &jerr));
    natsMsgList list;
    s = natsSubscription_Fetch(&list, sub, 10, 2000, &jerr);
    printf("fetch: %s count=%d\n", natsStatus_GetText(s), s == NATS_OK ? list.Count : 0);
    if (s == NATS_OK) {
        for (int i = 0; i < list.Count; i++) {
            printf("  %s %.*s ack=%s\n", natsMsg_GetSubject(list.Msgs[i]), natsMsg_GetDataLength(list.Msgs[i]),
                   natsMsg_GetData(list.Msgs[i]), natsStatus_GetText(natsMsg_AckSync(list.Msgs[i], NULL, &jerr)));
        }
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Destroy(sub);

    natsMsg *m = NULL;
    s = js_GetLastMsg(&m, js, "CS", "cs.a", NULL, &jerr);
    printf("last cs.a: %s %.*s\n", natsStatus_GetText(s), m ? natsMsg_GetDataLength(m) : 0, m ? natsMsg_GetData(m) : "");
    if (m) { natsMsg_Destroy(m); m = NULL; }
    jsDirectGetMsgOptions dg;
    memset(&dg, 0, sizeof(dg));
    dg.LastBySubject = "cs.b";
    s = js_DirectGetMsg(&m, js, "CS", NULL, &dg);
    const char *seq = NULL;
    if (m) natsMsgHeader_Get(m, "Nats-Sequence", &seq);
    printf("direct last cs.b: %s %.*s seq=%s\n", natsStatus_GetText(s), m ? natsMsg_GetDataLength(m) : 0, m ? natsMsg_GetData(m) : "",
           seq ? seq : "-");
    if (m) { natsMsg_Destroy(m); m = NULL; }
    memset(&dg, 0, sizeof(dg));
    dg.Sequence = 99;
    s = js_DirectGetMsg(&m, js, "CS", NULL, &dg);
    printf("direct seq 99: %s\n", natsStatus_GetText(s));
    if (m) natsMsg_Destroy(m);

    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return 0;
}
