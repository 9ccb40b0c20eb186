def ratio(a, b):
    return a / b

print("computing")
print(ratio(1, 0))
