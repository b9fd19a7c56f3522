rootProject.name = "maestro-intellij"

plugins {
    // lets Gradle download the JDK toolchain below when the machine has none
    id("org.gradle.toolchains.foojay-resolver-convention") version "0.10.0"
}
