// Maestro for IntelliJ / PyCharm: a thin LSP4IJ client of `maestro lsp`.
// Built with the IntelliJ Platform Gradle Plugin 2.x; needs the JetBrains repositories
// (cache-redirector.jetbrains.com, plugins.jetbrains.com, www.jetbrains.com) and Maven Central.
//
//   gradle buildPlugin        -> build/distributions/maestro-intellij-<version>.zip
//   gradle runIde             -> a sandbox PyCharm with the plugin and LSP4IJ installed
//   gradle verifyPlugin       -> JetBrains' plugin verifier against the recommended IDEs

import org.jetbrains.intellij.platform.gradle.TestFrameworkType

plugins {
    id("java")
    id("org.jetbrains.kotlin.jvm") version "2.2.0"
    id("org.jetbrains.intellij.platform") version "2.9.0"
}

group = providers.gradleProperty("pluginGroup").get()
version = providers.gradleProperty("pluginVersion").get()

kotlin {
    jvmToolchain(21)
}

repositories {
    mavenCentral()
    intellijPlatform {
        defaultRepositories()
    }
}

dependencies {
    intellijPlatform {
        pycharmCommunity(providers.gradleProperty("platformVersion"))
        bundledPlugin("PythonCore")
        // LSP4IJ brings LSP4J: never bundle our own copy (ClassCastException otherwise)
        plugin("com.redhat.devtools.lsp4ij", providers.gradleProperty("lsp4ijVersion").get())
        testFramework(TestFrameworkType.Platform)
    }
    testImplementation("junit:junit:4.13.2")
}

intellijPlatform {
    pluginConfiguration {
        id = "dev.maestro.intellij"
        name = "Maestro"
        version = providers.gradleProperty("pluginVersion")
        ideaVersion {
            sinceBuild = providers.gradleProperty("pluginSinceBuild")
            untilBuild = provider { null }
        }
    }
    pluginVerification {
        ides {
            recommended()
        }
    }
}
