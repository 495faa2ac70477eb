// Creates the stack's SCRAM-SHA-512 users and ACLs on the local broker (deploy/local/stack.py).
//
// Run by `python -m deploy.local up` with Java's single-file source launcher, on the broker's own
// classpath (kafka-clients' Admin), over the loopback PLAINTEXT listener (its principal,
// User:ANONYMOUS, is a super user: local development only):
//
//   java -cp '<libs>/*' SecureSetup.java BOOTSTRAP SPEC_FILE
//
// SPEC_FILE has one line per item, fields separated by tabs:
//   user      NAME  PASSWORD_FILE
//   acl       PRINCIPAL  RESOURCE_TYPE  PATTERN_TYPE  NAME  OPERATION
// (RESOURCE_TYPE: TOPIC, GROUP, TRANSACTIONAL_ID, CLUSTER; PATTERN_TYPE: LITERAL, PREFIXED.)
// Every listed ACL is an ALLOW for any host. ACLs of the stack's users that are not listed are
// deleted, so the broker's ACLs are exactly the spec (StandardAuthorizer,
// allow.everyone.if.no.acl.found=false: anything else is denied).

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;

public class SecureSetup {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "20000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        List<UserScramCredentialAlteration> users = new ArrayList<>();
        Set<AclBinding> wanted = new HashSet<>();
        Set<String> principals = new HashSet<>();
        for (String line : Files.readAllLines(Path.of(args[1]))) {
            if (line.isBlank()) continue;
            String[] f = line.split("\t");
            if (f[0].equals("user")) {
                String password = Files.readString(Path.of(f[2])).strip();
                users.add(new UserScramCredentialUpsertion(f[1],
                        new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password));
                principals.add("User:" + f[1]);
            } else if (f[0].equals("acl")) {
                ResourceType type = ResourceType.valueOf(f[2]);
                wanted.add(new AclBinding(
                        new ResourcePattern(type, f[4], PatternType.valueOf(f[3])),
                        new AccessControlEntry(f[1], "*", AclOperation.valueOf(f[5]), AclPermissionType.ALLOW)));
                principals.add(f[1]);
            } else {
                throw new IllegalArgumentException("bad spec line: " + line);
            }
        }
        try (Admin admin = Admin.create(props)) {
            admin.alterUserScramCredentials(users).all().get(60, TimeUnit.SECONDS);
            List<AclBindingFilter> stale = new ArrayList<>();
            for (AclBinding existing : admin.describeAcls(AclBindingFilter.ANY).values().get(60, TimeUnit.SECONDS)) {
                if (principals.contains(existing.entry().principal()) && !wanted.contains(existing)) {
                    stale.add(existing.toFilter());
                }
            }
            if (!stale.isEmpty()) admin.deleteAcls(stale).all().get(60, TimeUnit.SECONDS);
            admin.createAcls(wanted).all().get(60, TimeUnit.SECONDS);
        }
        System.out.println("secure setup: " + users.size() + " users, " + wanted.size() + " ACLs");
    }
}
