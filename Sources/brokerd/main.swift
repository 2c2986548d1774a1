import Broker
import ArgumentParser
print("hi")
